"""Losses: definitions, CenterNet equivalences, gradients, edge cases, precision, DDP."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from centertargets import CtdetConfig, CtdetEncoder, MultiPoseConfig, MultiPoseEncoder
from centertargets.losses import CtdetLoss, LossOptions, MultiPoseLoss
from centertargets.losses import functional as LF
from centertargets.losses.modules import RegL1Loss, RegLoss, RegWeightedL1Loss

from conftest import random_boxes, random_keypoints


def _focal_by_definition(p: np.ndarray, gt: np.ndarray) -> float:
    """CornerNet/CenterNet focal loss written element by element from its definition."""
    pos = neg = 0.0
    npos = 0
    for pi, gi in zip(p.ravel().tolist(), gt.ravel().tolist()):
        if gi == 1:
            pos += math.log(pi) * (1 - pi) ** 2
            npos += 1
        elif gi < 1:
            neg += math.log(1 - pi) * pi ** 2 * (1 - gi) ** 4
    return -(pos + neg) / npos if npos else -neg


def _heat_batch(seed=0, shape=(2, 3, 12, 14), with_pos=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    gt = torch.rand(shape, generator=g, dtype=torch.float64) ** 6
    if with_pos:
        B, C, H, W = shape
        gt[0, 1, 3, 4] = 1
        gt[B - 1, C - 1, H - 2, W - 3] = 1
        gt[B - 1, 0, 0, 0] = 1
    return x, gt


@pytest.mark.parametrize("with_pos", [True, False])
def test_focal_loss_matches_its_definition(with_pos):
    x, gt = _heat_batch(with_pos=with_pos)
    p = LF.clamped_sigmoid(x)
    want = _focal_by_definition(p.numpy(), gt.numpy())
    assert LF.focal_loss(p, gt).item() == pytest.approx(want, rel=1e-12)
    assert LF.centernet_focal_loss_with_logits(x, gt).item() == pytest.approx(want, rel=1e-12)


def test_fused_focal_has_centernet_gradient_including_the_clamp():
    x, gt = _heat_batch()
    x[0, 0, :2] = 15.0          # clamp active: CenterNet's gradient is 0 there
    x[1, 1, :2] = -15.0
    a = x.clone().requires_grad_()
    LF.focal_loss(LF.clamped_sigmoid(a), gt).backward()
    b = x.clone().requires_grad_()
    LF.centernet_focal_loss_with_logits(b, gt).backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12)
    assert (b.grad[0, 0, :2] == 0).all()


def test_gradients_check_numerically():
    x, gt = _heat_batch(shape=(1, 2, 5, 6))
    x = x.clamp(-8, 8).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: LF.centernet_focal_loss_with_logits(a, gt), (x,))
    assert torch.autograd.gradcheck(lambda a: LF.focal_loss_with_logits(a, gt), (x,))
    ind = torch.tensor([[3, 17, 0]])
    mask = torch.tensor([[1, 1, 0]])
    cat = torch.tensor([[1, 0, 0]])
    assert torch.autograd.gradcheck(
        lambda a: LF.fast_focal_loss_with_logits(a, gt, ind, mask, cat), (x,))
    out = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randn(1, 3, 2, dtype=torch.float64)
    for fn in (LF.reg_l1_loss, LF.reg_smooth_l1_loss):
        assert torch.autograd.gradcheck(
            lambda o: fn(LF.transpose_and_gather(o, ind), target, mask), (out,))


def test_logit_focal_equals_clamped_where_clamp_is_inactive_and_stays_finite():
    x, gt = _heat_batch()
    x = x.clamp(-9, 9)
    assert LF.focal_loss_with_logits(x, gt).item() == pytest.approx(
        LF.focal_loss(LF.clamped_sigmoid(x), gt).item(), rel=1e-10)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xi = x.to(dtype).clone()
        xi[0, 0, 0, :3] = float("inf")
        xi[0, 0, 1, :3] = float("-inf")
        xi[1, 0, 0, 0] = float("-inf")          # at a positive
        for fn in (LF.focal_loss_with_logits, LF.centernet_focal_loss_with_logits):
            a = xi.clone().requires_grad_()
            loss = fn(a, gt.to(dtype))
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(a.grad).all(), (fn.__name__, dtype)
            assert a.grad.dtype == dtype


def test_fast_focal_equals_centernet_on_encoder_targets(rng):
    cfg = CtdetConfig(output_size=(48, 40), num_classes=5, max_objs=20, with_cat=True)
    enc = CtdetEncoder(cfg)
    batch = []
    for _ in range(3):
        boxes = random_boxes(rng, 10, 48, 40, min_side=4)
        t, rep = enc.encode_with_report(boxes, rng.integers(0, 5, 10))
        assert rep.center_collisions == 0
        batch.append(t)
    b = {k: torch.from_numpy(np.stack([t[k] for t in batch])) for k in batch[0]}
    x = torch.randn(3, 5, 40, 48, dtype=torch.float64)
    want = LF.centernet_focal_loss_with_logits(x, b["hm"].double())
    got = LF.fast_focal_loss_with_logits(x, b["hm"].double(), b["ind"], b["reg_mask"], b["cat"])
    assert got.item() == pytest.approx(want.item(), rel=1e-10)
    with pytest.raises(ValueError, match="with_cat=True"):
        CtdetLoss(cfg.replace(with_cat=False), LossOptions(focal="fast"))


def test_regression_normalisations_differ_as_documented():
    out = torch.zeros(1, 2, 4, 4)
    ind = torch.tensor([[5, 6, 0]])
    mask = torch.tensor([[1, 1, 0]])
    target = torch.ones(1, 3, 2) * 2      # every masked coordinate is off by 2
    # RegL1Loss: 4 coordinates off by 2 -> 8 / (4 + 1e-4)
    assert RegL1Loss()(out, mask, ind, target).item() == pytest.approx(8 / (4 + 1e-4))
    # smooth-L1 RegLoss: (2 - 0.5) per coordinate, divided by 2 objects
    assert RegLoss()(out, mask, ind, target).item() == pytest.approx(6 / (2 + 1e-4))
    # RegWeightedL1Loss: per-coordinate mask, only 1 coordinate on
    cmask = torch.zeros(1, 3, 2)
    cmask[0, 1, 0] = 1
    assert RegWeightedL1Loss()(out, cmask, ind, target).item() == pytest.approx(2 / (1 + 1e-4))


def test_unmasked_slots_with_infinite_outputs_do_not_poison_the_loss():
    out = torch.zeros(1, 2, 4, 4)
    out[0, :, 0, 0] = float("inf")      # pixel 0, read by the empty slots
    ind = torch.tensor([[5, 0, 0]])
    mask = torch.tensor([[1, 0, 0]])
    loss = RegL1Loss()(out, mask, ind, torch.ones(1, 3, 2))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(2 / (2 + 1e-4))


def _pose_batch(rng, cfg, n_img=2, people=4, empty=False):
    enc = MultiPoseEncoder(cfg)
    W, H = cfg.output_size
    ts = []
    for _ in range(n_img):
        if empty:
            boxes, kps = np.zeros((0, 4)), np.zeros((0, cfg.num_joints, 3))
        else:
            boxes = random_boxes(rng, people, W, H, min_side=4)
            kps = random_keypoints(rng, boxes, cfg.num_joints)
        ts.append(enc.encode(boxes, kps))
    return {k: torch.from_numpy(np.stack([t[k] for t in ts])) for k in ts[0]}


def _pose_outputs(cfg, B, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(head.shape(B), generator=g).to(dtype).requires_grad_()
            for name, head in cfg.head_spec().items()}


@pytest.mark.parametrize("variant", [dict(), dict(dense_hp=True), dict(heatmap="msra"),
                                     dict(hm_hp=False, reg_hp_offset=False)])
def test_multi_pose_loss_edge_cases_stay_finite(variant, rng):
    cfg = MultiPoseConfig(output_size=(32, 32), **variant)
    for empty in (False, True):
        batch = _pose_batch(rng, cfg, empty=empty)
        out = _pose_outputs(cfg, 2)
        with torch.no_grad():
            out["hm"][0, 0, :4] = float("inf")
            out["hm"][1, 0, :4] = float("-inf")
        loss, stats = MultiPoseLoss(cfg)(out, batch)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(v) for v in stats.values())
        assert all(torch.isfinite(v.grad).all() for v in out.values() if v.grad is not None)
        if empty:
            assert stats["hp_loss"].item() == 0 and stats["wh_loss"].item() == 0
    # all keypoints missing: joint terms are zero, not NaN
    boxes = random_boxes(rng, 3, 32, 32, min_side=4)
    t = MultiPoseEncoder(cfg).encode(boxes, np.zeros((3, 17, 3)))
    batch = {k: torch.from_numpy(v[None]) for k, v in t.items()}
    loss, stats = MultiPoseLoss(cfg)(_pose_outputs(cfg, 1), batch)
    assert torch.isfinite(loss) and stats["hp_loss"].item() == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_outputs_give_the_float32_loss(dtype, rng):
    cfg = MultiPoseConfig(output_size=(32, 32))
    batch = _pose_batch(rng, cfg)
    ref, _ = MultiPoseLoss(cfg)(_pose_outputs(cfg, 2), batch)
    out = _pose_outputs(cfg, 2, dtype=dtype)
    loss, _ = MultiPoseLoss(cfg)(out, batch)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=2e-2)
    assert out["hm"].grad.dtype == dtype and torch.isfinite(out["hm"].grad.float()).all()


def test_loss_options_and_stacks(rng):
    cfg = MultiPoseConfig(output_size=(32, 32))
    batch = _pose_batch(rng, cfg)
    out = _pose_outputs(cfg, 2)
    loss, stats = MultiPoseLoss(cfg)(out, batch)
    weights = LossOptions(hm_weight=2.0, wh_weight=0.5, off_weight=0.0)
    loss2, stats2 = MultiPoseLoss(cfg, weights)(out, batch)
    assert stats2["off_loss"].item() == 0 and stats2["hp_offset_loss"].item() == 0
    assert loss2.item() == pytest.approx(2 * stats["hm_loss"].item() + 0.5 * stats["wh_loss"].item()
                                         + stats["hp_loss"].item() + stats["hm_hp_loss"].item(),
                                         rel=1e-5)
    two = [out, _pose_outputs(cfg, 2, seed=1)]
    l_two, _ = MultiPoseLoss(cfg)(two, batch)
    l_b, _ = MultiPoseLoss(cfg)(two[1], batch)
    assert l_two.item() == pytest.approx((loss.item() + l_b.item()) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="hm_weight"):
        LossOptions(hm_weight=-1)
    with pytest.raises(ValueError, match="focal_hm_hp='quick'"):
        LossOptions(focal_hm_hp="quick")


def test_mismatched_batch_and_outputs_are_named(rng):
    cfg = MultiPoseConfig(output_size=(32, 32))
    batch = _pose_batch(rng, cfg)
    out = _pose_outputs(cfg, 2)
    other = MultiPoseConfig(output_size=(32, 32), num_joints=16, flip_idx=())
    with pytest.raises(ValueError, match=r"batch\['hps'\] has shape \(2, 32, 34\): expected "
                                         r"\(2, 32, 32\)"):
        MultiPoseLoss(other)(out, batch)
    missing = dict(batch)
    del missing["hm_hp"]
    with pytest.raises(ValueError, match="batch has no 'hm_hp'"):
        MultiPoseLoss(cfg)(out, missing)
    bad = dict(out, hps=out["hps"][:, :10])
    with pytest.raises(ValueError, match=r"outputs\['hps'\] has shape \(2, 10, 32, 32\): expected "
                                         r"\(2, 34, 32, 32\), 34 channels for head 'hps'"):
        MultiPoseLoss(cfg)(bad, batch)
    with pytest.raises(ValueError, match=r"outputs has no head 'hm_hp': expected a \(2, 17, 32, "
                                         r"32\) tensor"):
        MultiPoseLoss(cfg)({k: v for k, v in out.items() if k != "hm_hp"}, batch)
    with pytest.raises(TypeError, match=r"outputs\['wh'\] is ndarray: expected a torch.Tensor"):
        MultiPoseLoss(cfg)(dict(out, wh=out["wh"].detach().numpy()), batch)
    with pytest.raises(ValueError, match=r"outputs\['reg'\] has shape \(3, 2, 32, 32\): "
                                         r"expected \(2, 2, 32, 32\)"):
        MultiPoseLoss(cfg)(dict(out, reg=torch.zeros(3, 2, 32, 32)), batch)
    # heads the config turns off are not required
    off = MultiPoseConfig(output_size=(32, 32), hm_hp=False, reg_hp_offset=False)
    lean = {k: v for k, v in out.items() if k not in ("hm_hp", "hp_offset")}
    loss, stats = MultiPoseLoss(off)(lean, {k: v for k, v in batch.items()
                                             if k not in ("hm_hp", "hp_offset", "hp_ind", "hp_mask")})
    assert stats["hm_hp_loss"].item() == 0 and torch.isfinite(loss)
    with pytest.raises(TypeError):
        MultiPoseLoss(CtdetConfig())


def test_options_that_cannot_apply_are_refused_not_ignored():
    with pytest.raises(ValueError, match="norm_wh=True with CtdetConfig\\(dense_wh=True\\)"):
        CtdetLoss(CtdetConfig(dense_wh=True), LossOptions(norm_wh=True))
    with pytest.raises(ValueError, match="norm_wh=True with a MultiPoseConfig"):
        MultiPoseLoss(MultiPoseConfig(), LossOptions(norm_wh=True))
    with pytest.raises(ValueError, match="focal='fast' for hm_hp with occluded_joints="
                                         "'ignore_in_hm_hp'"):
        MultiPoseLoss(MultiPoseConfig(occluded_joints="ignore_in_hm_hp"), LossOptions(focal="fast"))
    with pytest.raises(ValueError, match="focal='fast' for hm_hp with reg_hp_offset=False"):
        MultiPoseLoss(MultiPoseConfig(reg_hp_offset=False), LossOptions(focal="fast"))
    # the explicit way out: fast centres, standard joints
    MultiPoseLoss(MultiPoseConfig(occluded_joints="ignore_in_hm_hp"),
                  LossOptions(focal="fast", focal_hm_hp="centernet"))
    assert LossOptions(focal="fast").hm_hp_focal == "fast"
    assert LossOptions(focal="fast", focal_hm_hp="logits").hm_hp_focal == "logits"


def test_fast_joint_focal_equals_the_standard_one_without_joint_collisions(rng):
    cfg = MultiPoseConfig(output_size=(48, 48), max_objs=6)
    batch = _pose_batch(rng, cfg, people=3)
    hm_hp = batch["hm_hp"]
    peaks = int((hm_hp == 1).sum())
    assert peaks == int(batch["hp_mask"].sum())          # one peak per supervised joint here
    out = _pose_outputs(cfg, 2)
    _, std = MultiPoseLoss(cfg)(out, batch)
    _, fast = MultiPoseLoss(cfg, LossOptions(focal="fast"))(out, batch)
    assert fast["hm_hp_loss"].item() == pytest.approx(std["hm_hp_loss"].item(), rel=1e-6)
    # the fast loss takes slot k * J + j to be joint j: its peak is in channel j at hp_ind
    J = cfg.num_joints
    flat = hm_hp.flatten(2)                                # (B, J, H*W)
    for b in range(2):
        for slot in batch["hp_mask"][b].nonzero().flatten().tolist():
            assert flat[b, slot % J, batch["hp_ind"][b, slot]] == 1


def test_heatmaps_already_passed_through_a_sigmoid_are_warned_about_once(rng):
    cfg = MultiPoseConfig(output_size=(32, 32))
    batch = _pose_batch(rng, cfg)
    out = {k: v.detach() for k, v in _pose_outputs(cfg, 2).items()}
    crit = MultiPoseLoss(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crit(out, batch)                                   # logits: no warning
    probs = dict(out, hm=out["hm"].sigmoid())
    with pytest.warns(UserWarning, match=r"outputs\['hm'\] lies entirely in \[0, 1\]: the "
                                         "losses take logits"):
        crit(probs, batch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crit(probs, batch)                                 # once per loss
    with pytest.warns(UserWarning, match=r"outputs\['hm_hp'\]"):
        MultiPoseLoss(cfg)(dict(out, hm_hp=out["hm_hp"].sigmoid()), batch)
    assert not LF.looks_like_probabilities(torch.tensor([0.5, 1.5]))
    assert LF.looks_like_probabilities(torch.rand(10000))
    big = torch.rand(100000)
    big[12345] = -0.1                                      # off the strided sample
    assert not LF.looks_like_probabilities(big)


def _ddp_worker(rank: int, world: int, init_file: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                         world_size=world)
    x, gt = _heat_batch(seed=rank)
    if rank == 1:
        gt[gt == 1] = 0.5            # rank 1 has no positives of its own
    local = LF.centernet_focal_loss_with_logits(x, gt, distributed=True)
    results[rank] = (local.item(), float((gt == 1).sum()),
                     float(-LF.centernet_focal_loss_with_logits(x, gt) * max(1.0, (gt == 1).sum())))
    torch.distributed.destroy_process_group()


def test_distributed_normalisation_uses_the_global_positive_count(tmp_path):
    world = 2
    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_ddp_worker, args=(world, str(tmp_path / "init"), results), nprocs=world, join=True)
    total_pos = sum(results[r][1] for r in range(world))
    total_sum = sum(results[r][2] for r in range(world))
    # DDP averages gradients over ranks; the average of the local losses is global sum / global count
    mean_local = sum(results[r][0] for r in range(world)) / world
    assert total_pos == 3
    assert mean_local == pytest.approx(-total_sum / total_pos, rel=1e-10)
    assert results[1][0] == pytest.approx(-results[1][2] / (total_pos / world), rel=1e-10)


def test_gradient_descent_on_the_loss_fits_one_batch(rng):
    """The loss and its fused gradient drive free outputs towards the targets."""
    cfg = MultiPoseConfig(output_size=(24, 24), max_objs=4)
    batch = _pose_batch(rng, cfg, n_img=1, people=2)
    out = _pose_outputs(cfg, 1)
    opt = torch.optim.Adam(out.values(), lr=0.3)
    crit = MultiPoseLoss(cfg)
    first = None
    for _ in range(100):
        loss, stats = crit(out, batch)
        first = first if first is not None else {k: v.item() for k, v in stats.items()}
        opt.zero_grad()
        loss.backward()
        opt.step()
    for k in ("hm_loss", "hm_hp_loss", "hp_loss", "wh_loss", "off_loss"):
        assert stats[k].item() < 0.5 * first[k], k


@pytest.mark.parametrize("head_conv", [0, 16])
def test_build_heads_gives_every_head_of_the_spec_with_centernets_biases(head_conv):
    from centertargets import TrackingConfig
    from centertargets.losses import build_heads

    for cfg in (MultiPoseConfig(output_size=(8, 8)), TrackingConfig(output_size=(8, 8),
                                                                     num_classes=3)):
        heads = build_heads(cfg, 12, head_conv=head_conv)
        out = heads(torch.zeros(2, 12, 8, 8))
        spec = cfg.head_spec()
        assert list(out) == list(spec)
        for name, h in spec.items():
            assert out[name].shape == h.shape(2)
            # zero features: the output is the last bias (after a ReLU of the hidden bias 0)
            assert torch.allclose(out[name], torch.full_like(out[name], h.init_bias))
        assert spec["hm"].init_bias == pytest.approx(-2.19)
    with pytest.raises(ValueError, match="in_channels=0"):
        build_heads(cfg, 0)
