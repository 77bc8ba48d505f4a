"""A Determined ``PyTorchTrial``, unchanged, running as a searchkit trial.

This is the shape of Determined's own MNIST example (``MNistTrial`` with
``build_training_data_loader``, ``build_validation_data_loader``,
``train_batch`` and ``evaluate_batch``). The config names the class itself,
``entrypoint: model_def:MNistTrial``; with ``searchkit-runners[determined]``
installed, every runner trains it: each ``ValidateAfter(length)`` trains to
``length`` batches, validates, checkpoints, and a promoted trial resumes from
its checkpoint. Nothing in this file knows about searchkit.
"""

from __future__ import annotations

import pathlib
from typing import Any

import torch
from data import load_mnist, resolve_data_dir
from determined import pytorch
from torch import nn

MODEL_DIR = pathlib.Path(__file__).resolve().parent


class MNistTrial(pytorch.PyTorchTrial):
    def __init__(self, context: pytorch.PyTorchTrialContext) -> None:
        torch.set_num_threads(1)  # trials share the machine's cores
        self.context = context
        data_config = self.context.get_data_config()
        data_dir = resolve_data_dir(data_config.get("data_dir", "~/.cache/searchkit/mnist"), MODEL_DIR)
        self.data = load_mnist(data_dir, download=bool(data_config.get("download", True)))
        n1 = self.context.get_hparam("n_filters1")
        n2 = self.context.get_hparam("n_filters2")
        self.model = self.context.wrap_model(
            nn.Sequential(
                nn.Conv2d(1, n1, 3),
                nn.ReLU(),
                nn.Conv2d(n1, n2, 3),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Dropout(self.context.get_hparam("dropout1")),
                nn.Flatten(),
                nn.Linear(12 * 12 * n2, 128),
                nn.ReLU(),
                nn.Dropout(self.context.get_hparam("dropout2")),
                nn.Linear(128, 10),
                nn.LogSoftmax(dim=1),
            )
        )
        self.optimizer = self.context.wrap_optimizer(
            torch.optim.Adadelta(self.model.parameters(), lr=self.context.get_hparam("learning_rate"))
        )

    def build_training_data_loader(self) -> pytorch.DataLoader:
        dataset = torch.utils.data.TensorDataset(self.data.train_images, self.data.train_labels)
        return pytorch.DataLoader(dataset, batch_size=self.context.get_per_slot_batch_size(), shuffle=True)

    def build_validation_data_loader(self) -> pytorch.DataLoader:
        dataset = torch.utils.data.TensorDataset(self.data.validation_images, self.data.validation_labels)
        return pytorch.DataLoader(dataset, batch_size=500)

    def train_batch(self, batch: Any, epoch_idx: int, batch_idx: int) -> dict[str, Any]:
        images, labels = batch
        loss = nn.functional.nll_loss(self.model(images), labels)
        self.context.backward(loss)
        self.context.step_optimizer(self.optimizer)
        return {"loss": loss}

    def evaluate_batch(self, batch: Any) -> dict[str, Any]:
        images, labels = batch
        output = self.model(images)
        validation_loss = nn.functional.nll_loss(output, labels).item()
        accuracy = (output.argmax(dim=1) == labels).float().mean().item()
        return {"validation_loss": validation_loss, "accuracy": accuracy}
