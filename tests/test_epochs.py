"""The Trainer's epoch count: the configured epochs, fewer when they would pass the step cap."""
import pytest

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
