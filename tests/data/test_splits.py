"""The one split module: every split keeps its promises (disjoint, covering, stratified,
seeded by its own generator)."""
import torch

from gatlib.data.splits import (random_split, split_mask, stratified_folds, stratified_masks,
                                stratified_split)


def test_stratified_folds_partition_and_balance_the_classes():
    y = torch.tensor([0] * 30 + [1] * 20 + [2] * 10)
    folds = stratified_folds(y, 10, seed=3)
    assert torch.equal(torch.sort(torch.cat(folds)).values, torch.arange(60))
    for f in folds:
        assert torch.equal(torch.bincount(y[f], minlength=3), torch.tensor([3, 2, 1]))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    again = stratified_folds(y, 10, seed=3)
    assert torch.equal(torch.get_rng_state(), state)          # the global generator untouched
    assert all(torch.equal(a, b) for a, b in zip(folds, again))
    assert not all(torch.equal(a, b) for a, b in zip(folds, stratified_folds(y, 10, seed=4)))


def test_random_split_is_a_seeded_partition():
    items = list(range(50))
    parts = random_split(items, seed=1)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(sum(parts.values(), [])) == items
    assert random_split(items, seed=1) == parts and random_split(items, seed=2) != parts


def test_split_mask_picks_column_seed_mod_s():
    stack = torch.zeros(6, 3, dtype=torch.uint8)
    stack[torch.arange(3) * 2, torch.arange(3)] = 1
    assert split_mask(stack, 4).tolist() == [False, False, True, False, False, False]
    one = torch.tensor([1, 0, 1])
    assert split_mask(one, 7).dtype == torch.bool and split_mask(one, 7).tolist() == [
        True, False, True]


def test_stratified_masks_and_split_agree_on_their_fractions():
    y = torch.tensor([0] * 40 + [1] * 20)
    train, val, test = stratified_masks(y, 2, (0.5, 0.25, 0.25), torch.Generator().manual_seed(0))
    assert not (train & val).any() and not (train & test).any() and not (val & test).any()
    assert [int(m[y == 1].sum()) for m in (train, val, test)] == [10, 5, 5]
    parts = stratified_split(y, (0.5, 0.25, 0.25), seed=0)
    assert [p.numel() for p in parts] == [30, 15, 15]
