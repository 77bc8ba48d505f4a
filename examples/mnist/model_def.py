"""The seed's MNIST CNN, trained through searchkit's trial API (works unchanged on every runner).

``entrypoint: model_def:train`` in config.yaml names :func:`train`. Lengths are in
batches (``max_length: {batches: N}``). Each operation trains the trial up to its
absolute length, validates on the held-out images, reports ``validation_loss`` and
``accuracy``, and stores a checkpoint (model, optimizer and the batches trained),
so a trial that ASHA promotes later resumes where it stopped instead of from zero.

Data settings (the config's ``data:`` section):

- ``data_dir``: where MNIST is (see data.py). A relative path is relative to this
  model directory, so the example works from any current directory and on any
  runner that ships the model directory. Default: ``~/.cache/searchkit/mnist``.
- ``download_dir``: where to look next, and where to download MNIST when neither
  place has it (default: ``data_dir``).
- ``download``: download MNIST when it is missing (default ``true``).
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import torch
from data import MnistData, load_mnist, resolve_data_dir
from torch import nn
from torch.nn import functional

MODEL_DIR = pathlib.Path(__file__).resolve().parent
DEFAULT_DATA_DIR = "~/.cache/searchkit/mnist"
CHECKPOINT_FILE = "state.pt"
PROGRESS_EVERY = 10  # batches between progress reports (and preemption checks)
VALIDATION_BATCH = 500


class Net(nn.Module):
    """The seed's CNN: conv3-relu-conv3-relu-maxpool2-dropout-linear-relu-dropout-linear-logsoftmax."""

    def __init__(self, hparams: dict[str, Any]) -> None:
        super().__init__()
        n1, n2 = int(hparams["n_filters1"]), int(hparams["n_filters2"])
        self.layers = nn.Sequential(
            nn.Conv2d(1, n1, 3),
            nn.ReLU(),
            nn.Conv2d(n1, n2, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(float(hparams["dropout1"])),
            nn.Flatten(),
            nn.Linear(12 * 12 * n2, 128),
            nn.ReLU(),
            nn.Dropout(float(hparams["dropout2"])),
            nn.Linear(128, 10),
            nn.LogSoftmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Trainer:
    """Model, optimizer and the position in the data; everything a checkpoint holds."""

    def __init__(self, hparams: dict[str, Any], data: MnistData, seed: int) -> None:
        self.data = data
        self.batch_size = int(hparams["global_batch_size"])
        self.seed = seed
        torch.manual_seed(seed)
        self.model = Net(hparams)
        self.optimizer = torch.optim.Adadelta(self.model.parameters(), lr=float(hparams["learning_rate"]))
        self.batches_trained = 0
        self.batches_per_epoch = math.ceil(len(data.train_labels) / self.batch_size)
        self._order: torch.Tensor | None = None
        self._order_epoch = -1

    def _batch_indices(self, batch: int) -> torch.Tensor:
        # A fixed order per (seed, epoch): a resumed trial sees exactly the batches it would have seen.
        epoch, position = divmod(batch, self.batches_per_epoch)
        if self._order is None or self._order_epoch != epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._order = torch.randperm(len(self.data.train_labels), generator=generator)
            self._order_epoch = epoch
        return self._order[position * self.batch_size : (position + 1) * self.batch_size]

    def train_batch(self) -> float:
        """Train on the next batch; returns its loss."""
        indices = self._batch_indices(self.batches_trained)
        self.model.train()
        self.optimizer.zero_grad()
        loss = functional.nll_loss(
            self.model(self.data.train_images[indices]), self.data.train_labels[indices]
        )
        loss.backward()
        self.optimizer.step()
        self.batches_trained += 1
        return float(loss.item())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """``validation_loss`` (mean negative log-likelihood) and ``accuracy`` on the held-out images."""
        self.model.eval()
        images, labels = self.data.validation_images, self.data.validation_labels
        total_loss, correct = 0.0, 0
        for start in range(0, len(labels), VALIDATION_BATCH):
            output = self.model(images[start : start + VALIDATION_BATCH])
            target = labels[start : start + VALIDATION_BATCH]
            total_loss += float(functional.nll_loss(output, target, reduction="sum"))
            correct += int((output.argmax(dim=1) == target).sum())
        return {"validation_loss": total_loss / len(labels), "accuracy": correct / len(labels)}

    def save(self, directory: pathlib.Path) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "batches_trained": self.batches_trained,
            "rng_state": torch.get_rng_state(),  # dropout draws from it: resume exactly
        }
        torch.save(state, directory / CHECKPOINT_FILE)

    def load(self, directory: pathlib.Path) -> None:
        state = torch.load(directory / CHECKPOINT_FILE, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches_trained = int(state["batches_trained"])
        torch.set_rng_state(state["rng_state"])


def load_data(data_settings: dict[str, Any] | None) -> MnistData:
    """MNIST as the config's ``data:`` section says (relative paths: relative to this directory)."""
    settings = dict(data_settings or {})
    data_dir = resolve_data_dir(settings.get("data_dir", DEFAULT_DATA_DIR), MODEL_DIR)
    download_dir = resolve_data_dir(settings.get("download_dir", data_dir), MODEL_DIR)
    return load_mnist(data_dir, download=bool(settings.get("download", True)), download_dir=download_dir)


def train(ctx: Any) -> None:
    """The training function: one trial, any number of operations, resumable from its checkpoint."""
    torch.set_num_threads(1)  # trials share the machine's cores with each other
    data = load_data(ctx.data)
    ctx.log.info("%s", data.source)
    trainer = Trainer(ctx.hparams, data, seed=int(ctx.trial_id))

    latest = ctx.checkpoint.latest
    if latest is not None:
        with ctx.checkpoint.restore_path(latest.uuid) as path:
            trainer.load(pathlib.Path(path))
        ctx.log.info("resumed from checkpoint %s at %d batches", latest.uuid, trainer.batches_trained)

    for op in ctx.searcher.operations():
        losses: list[float] = []
        while trainer.batches_trained < op.length:
            losses.append(trainer.train_batch())
            if trainer.batches_trained % PROGRESS_EVERY == 0:
                op.report_progress(trainer.batches_trained)
                if ctx.preempt.should_preempt():
                    # The runner wants the slot back: keep the work done so far, stop here.
                    _store_checkpoint(ctx, trainer)
                    return
        if losses:
            ctx.train.report_training_metrics(trainer.batches_trained, {"loss": sum(losses) / len(losses)})
        metrics = trainer.validate()
        ctx.train.report_validation_metrics(trainer.batches_trained, metrics)
        _store_checkpoint(ctx, trainer)
        ctx.log.info(
            "%d batches: validation_loss %.4f, accuracy %.4f",
            trainer.batches_trained,
            metrics["validation_loss"],
            metrics["accuracy"],
        )
        op.report_completed(metrics["validation_loss"])


def _store_checkpoint(ctx: Any, trainer: Trainer) -> None:
    with ctx.checkpoint.store_path({"steps_completed": trainer.batches_trained}) as path:
        trainer.save(pathlib.Path(path))
