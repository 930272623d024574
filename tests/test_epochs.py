"""The Trainer's epoch count: the configured epochs, fewer when they would pass the step cap; its progress lines."""
import logging

import pytest

from components import trainer
from components.hparams import TrainConfig
from components.trainer import epochs_for


@pytest.mark.parametrize("steps_per_epoch, expected", [
    (176, 10),      # ml-100k: 10 epochs, 1,760 steps
    (1_758, 10),    # ml-1m: 17,580 steps, under the cap
    (8_789, 4),     # 5M ratings: the cap allows 3.4 epochs, rounded up
    (43_946, 1),    # ml-25m: one epoch is past the cap, and one epoch is the least
])
def test_epochs_shrink_only_past_the_step_cap(steps_per_epoch, expected):
  assert epochs_for(steps_per_epoch, TrainConfig(epochs=10, max_train_steps=30_000)) == expected


def test_a_long_epoch_logs_its_progress_at_most_every_progress_s(monkeypatch, caplog):
  clock = iter([0.0, 30.0, 61.0, 90.0, 125.0, 190.0, 200.0])  # epoch start, the end of five calls, epoch end
  monkeypatch.setattr(trainer.time, "monotonic", lambda: next(clock))
  log = trainer.EpochLog(epochs=1, steps=1000, progress_s=60.0)
  with caplog.at_level(logging.INFO, logger=trainer.__name__):
    log.on_epoch_begin(0)
    for last_step in (63, 127, 191, 255, 1023):  # the last call ran fewer than its 64 steps
      log.on_train_batch_end(last_step)
    log.on_epoch_end(0, {"loss": 0.5})
  assert caplog.messages == ["Trainer epoch 1/1: step 128/1000 (13%), 2 steps/s",
                             "Trainer epoch 1/1: step 256/1000 (26%), 2 steps/s",
                             "Trainer epoch 1/1: step 1000/1000 (100%), 5 steps/s",
                             "Trainer epoch 1/1: loss 0.5000 (), 200.0 s, 5 steps/s"]
