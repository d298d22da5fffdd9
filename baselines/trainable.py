"""The TensorFlow full- and sampled-softmax baselines as a ``Trainable`` for the suite's harness.

The harness owns the loop, the batch order, the clock (around ``train_batch`` only), evaluation
and checkpoints; this class owns the TensorFlow state. The train step is one ``tf.function`` with
an input signature (traced once, in ``warmup``); ``train_batch`` converts the batch's CSR rows to
flat arrays with vectorised NumPy (tens of microseconds: ``t_host``), then copies them to the
device, runs the step and waits until the device has finished it (``t_step``;
:func:`baselines.timing.finish`), so on a GPU the harness's clock covers the host-to-device
transfer and every kernel of the step, not just their launch.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from baselines.adam import Adam
from baselines.batches import dense_label_matrix, feature_arrays, make_batch
from baselines.config import BaselineConfig
from baselines.device import build_info, resolve_device
from baselines.losses import full_softmax_loss, sampled_softmax_loss
from baselines.network import Network
from baselines.samplers import log_expected_counts, sample_candidates, sampler_log_probs
from baselines.timing import finish

__all__ = ["TFSoftmaxTrainable"]

_FEATURES = [
    tf.TensorSpec([None], tf.int32, "feat_ids"),
    tf.TensorSpec([None], tf.float32, "feat_vals"),
    tf.TensorSpec([None], tf.int32, "feat_rows"),
]
_LABELS = [
    tf.TensorSpec([None, None], tf.int32, "labels"),
    tf.TensorSpec([None], tf.int32, "counts"),
]
_DENSE_TARGET = [tf.TensorSpec([None, None], tf.float64, "target")]


def _labelled_mean(losses: tf.Tensor, labelled: tf.Tensor) -> tf.Tensor:
    """Mean of per-point ``losses`` (B,) over the ``labelled`` (B,) points, as the engine reports.

    Points without labels have zero loss and gradient. The training step differentiates this mean
    times the number of labelled points (the summed loss), as the engine does.
    """
    n = tf.reduce_sum(tf.cast(labelled, tf.float32))
    return tf.reduce_sum(losses) / tf.maximum(n, 1.0)


class TFSoftmaxTrainable:
    """Full or sampled softmax on ``D -> hidden -> L`` with Adam, in TensorFlow.

    Parameters
    ----------
    config : BaselineConfig
        Model, device and optimiser settings.
    seed : int
        Seeds the initial weights and the sampler stream (the harness seeds the batch order).

    Attributes
    ----------
    method : str
        "tf-full" or "tf-sampled" (curve rows).
    device : str
        "cpu" or "gpu": the device the ops are pinned to.
    net : Network
        The variables (after ``prepare``).
    opt : Adam
        The optimiser and its slots (after ``prepare``).
    loss_fn : callable
        ``loss_fn(*batch_inputs(rows)) -> scalar`` mean loss over the labelled points.
    input_signature : list of tf.TensorSpec
        What ``loss_fn`` and ``step`` take; dynamic sizes, so one trace serves every batch.
    step : tf.function
        One compiled training step (forward, gradient, Adam) returning the loss.

    Raises
    ------
    slide_bench.errors.GPUUnavailableError
        If the GPU is requested and none is visible.
    """

    def __init__(self, config: BaselineConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.method = f"tf-{config.model}"
        self.device = config.device
        self._tf_device = resolve_device(config.device)
        self._t_host = 0.0
        self._t_step = 0.0

    @property
    def tf_device(self) -> str:
        """The TensorFlow device string the ops are pinned to ("/CPU:0" or "/GPU:0")."""
        return self._tf_device

    # -- set-up (untimed) --------------------------------------------------------------------

    def prepare(self, train) -> None:
        """Create variables, optimiser slots and sampler tables for ``train`` (an XCData)."""
        cfg = self.config
        self._train = train
        self._n_labels = train.n_labels
        sampled = cfg.model == "sampled"
        with tf.device(self._tf_device):
            self._gen = tf.random.Generator.from_seed(self.seed)
            self.net = Network(
                train.n_features, train.n_labels, cfg.hidden, cfg.init, cfg.init_std, self._gen
            )
            self.opt = Adam(
                self.net.variables,
                cfg.lr,
                cfg.beta1,
                cfg.beta2,
                cfg.eps,
                lazy=cfg.adam == "lazy",
                sparse_names=("w1", "w2", "b2") if sampled else ("w1",),
            )
            if sampled:
                counts = np.bincount(train.y_indices, minlength=train.n_labels)
                log_p = sampler_log_probs(cfg.sampler, counts)
                self._n_sampled = cfg.n_sampled(train.n_labels)
                self._log_p = tf.constant(log_p.astype(np.float32))
                self._log_q = tf.constant(log_expected_counts(log_p, self._n_sampled))
        if cfg.label_feeding == "dense-float64":
            self.loss_fn, self.input_signature = self._dense_target_loss, _FEATURES + _DENSE_TARGET
        else:
            self.loss_fn, self.input_signature = self._sparse_label_loss, _FEATURES + _LABELS
        self.step = tf.function(self._train_step, input_signature=self.input_signature)
        self._topk = tf.function(
            self._topk_fn,
            input_signature=[
                *_FEATURES,
                tf.TensorSpec([], tf.int32, "batch_size"),
                tf.TensorSpec([], tf.int32, "k"),
            ],
        )

    def warmup(self, rows: np.ndarray) -> None:
        """Trace the step and run it once on ``rows``, then restore every variable and the RNG."""
        state = self.state_dict()
        self.train_batch(rows)
        self.load_state_dict(state)
        self._t_host = self._t_step = 0.0

    # -- the timed step ----------------------------------------------------------------------

    def train_batch(self, rows: np.ndarray) -> float:
        """One Adam step on the training points ``rows``; returns the batch's mean loss.

        Returns only when the device has finished the step (the harness's clock around this
        call is honest on a GPU too): host-side arrays (``t_host``), then the copies to the
        device, the step and the wait for the device (``t_step``).
        """
        start = time.perf_counter()
        arrays = self.host_arrays(rows)
        ready = time.perf_counter()
        with tf.device(self._tf_device):
            loss = finish(self.step(*self.to_device(arrays)))
        self._t_host += ready - start
        self._t_step += time.perf_counter() - ready
        return loss

    def host_arrays(self, rows: np.ndarray) -> list[np.ndarray]:
        """The step's inputs for training points ``rows`` as NumPy arrays (host work, timed).

        Returns
        -------
        list of ndarray
            Matching ``input_signature``: feature ids, values, rows, then labels and counts, or
            (``label_feeding=dense-float64``) the dense float64 target, built here as the
            published script did.
        """
        batch = make_batch(self._train, rows)
        arrays = [batch.feat_ids, batch.feat_vals, batch.feat_rows]
        if self.config.label_feeding == "dense-float64":
            return [*arrays, dense_label_matrix(batch, self._n_labels)]
        return [*arrays, batch.labels, batch.counts]

    def to_device(self, arrays: list[np.ndarray]) -> list[tf.Tensor]:
        """Tensors of ``arrays`` on the model's device (the host-to-device copy of a GPU run).

        TensorFlow keeps int32 tensors made eagerly in host memory and copies them when a GPU
        kernel needs them, inside the step; float tensors are copied here. Both happen inside
        ``train_batch``'s timed region.
        """
        with tf.device(self._tf_device):
            return [tf.constant(a) for a in arrays]

    def batch_inputs(self, rows: np.ndarray) -> list[tf.Tensor]:
        """:meth:`host_arrays` then :meth:`to_device`: the step's input tensors for ``rows``."""
        return self.to_device(self.host_arrays(rows))

    def _train_step(self, *inputs: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = self.loss_fn(*inputs)
            # Adam sees the gradient summed over the labelled points, as in the SLIDE engine:
            # Adam is invariant to the gradient's scale except through eps, so with the mean's
            # 1/n the two would take (slightly) different steps from the same batch
            total = loss * self._n_labelled(*inputs)
        variables = list(self.net.variables.values())
        self.opt.apply(tape.gradient(total, variables))
        return loss

    def _n_labelled(self, *inputs: tf.Tensor) -> tf.Tensor:
        """Labelled points of a batch (at least 1), from the step's inputs."""
        if self.config.label_feeding == "dense-float64":
            labelled = tf.reduce_any(inputs[3] > 0, axis=1)
        else:
            labelled = inputs[4] > 0
        return tf.maximum(tf.reduce_sum(tf.cast(labelled, tf.float32)), 1.0)

    def _sparse_label_loss(self, feat_ids, feat_vals, feat_rows, labels, counts) -> tf.Tensor:
        hidden = self.net.hidden(feat_ids, feat_vals, feat_rows, tf.shape(counts)[0])
        if self.config.model == "full":
            losses = full_softmax_loss(self.net.logits(hidden), labels, counts)
        else:
            losses = self._sampled_losses(hidden, labels, counts)
        return _labelled_mean(losses, counts > 0)

    def _dense_target_loss(self, feat_ids, feat_vals, feat_rows, target) -> tf.Tensor:
        hidden = self.net.hidden(feat_ids, feat_vals, feat_rows, tf.shape(target)[0])
        losses = tf.nn.softmax_cross_entropy_with_logits(
            labels=tf.cast(target, tf.float32), logits=self.net.logits(hidden)
        )
        # the op's gradient is softmax - target, nonzero for an all-zero target row: masking
        # the loss zeroes the upstream gradient of a point without labels, as the sparse form
        labelled = tf.reduce_any(target > 0, axis=1)
        return _labelled_mean(tf.where(labelled, losses, tf.zeros_like(losses)), labelled)

    def _sampled_losses(self, hidden, labels, counts) -> tf.Tensor:
        if self.config.sampled_labels == "one":
            # The paper's feed: one label per point, drawn uniformly among its labels each step.
            u = self._gen.uniform(tf.shape(counts))
            pick = tf.minimum(
                tf.cast(u * tf.cast(counts, tf.float32), tf.int32), tf.maximum(counts - 1, 0)
            )
            labels = tf.gather(labels, pick, batch_dims=1)[:, None]
            counts = tf.minimum(counts, 1)
        sampled = sample_candidates(self._gen, self._log_p, self._n_sampled)
        return sampled_softmax_loss(
            hidden, self.net.w2, self.net.b2, labels, counts, sampled, self._log_q
        )

    # -- evaluation (untimed) ----------------------------------------------------------------

    def _topk_fn(self, feat_ids, feat_vals, feat_rows, batch_size, k) -> tf.Tensor:
        hidden = self.net.hidden(feat_ids, feat_vals, feat_rows, batch_size)
        return tf.math.top_k(self.net.logits(hidden), k=k).indices

    def predict_topk(self, data, k: int) -> np.ndarray:
        """Top-``k`` labels of every point of ``data`` by dense scores over all labels.

        Parameters
        ----------
        data : slide_bench.data.XCData
        k : int

        Returns
        -------
        ndarray of int32, shape (n, k)
            Highest score first; ties broken towards the lower label id (``tf.math.top_k``).
        """
        n = data.x_indptr.shape[0] - 1
        out = np.empty((n, k), dtype=np.int32)
        chunk = max(1, (self.config.eval_chunk_mb << 20) // (4 * self._n_labels))
        with tf.device(self._tf_device):
            for start in range(0, n, chunk):
                rows = np.arange(start, min(start + chunk, n))
                ids, vals, seg = feature_arrays(data, rows)
                out[rows] = self._topk(
                    ids, vals, seg, tf.constant(len(rows), tf.int32), tf.constant(k, tf.int32)
                ).numpy()
        return out

    # -- bookkeeping -------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Seconds of host-side batch preparation and of the TF step since the last call."""
        out = {"t_host": self._t_host, "t_step": self._t_step}
        self._t_host = self._t_step = 0.0
        return out

    def _state_variables(self) -> dict[str, tf.Variable]:
        out = {f"net/{name}": var for name, var in self.net.variables.items()}
        out.update(self.opt.slots())
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Weights, Adam slots and step, and the generator state, as NumPy arrays."""
        state = {key: var.numpy() for key, var in self._state_variables().items()}
        state["rng/state"] = self._gen.state.numpy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned (same configuration and data shapes)."""
        for key, var in self._state_variables().items():
            var.assign(state[key])
        self._gen.reset(state["rng/state"])

    def is_finite(self) -> bool:
        """True if every weight is finite."""
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.net.variables.values())

    def provenance(self) -> dict[str, str]:
        """TensorFlow version, build, device and thread settings for the sidecar."""
        return build_info(self._tf_device)
