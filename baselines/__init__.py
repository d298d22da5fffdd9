"""TensorFlow full- and sampled-softmax baselines of the SLIDE paper, run in the suite's harness.

``python -m baselines train --model full|sampled --device cpu|gpu ...`` (see ``__main__``); the
method itself is :class:`baselines.trainable.TFSoftmaxTrainable`. Importing this package does not
import TensorFlow, so the CLI answers ``--help`` and config errors quickly.
"""
