"""SSD's parts in plain torch: boxes (IoU, MXNet's offset encoding), greedy NMS against a plain
reference, MXNet's default boxes, anchor matching and hard negative mining, and VOC mAP."""
import numpy as np
import pytest
import torch

from smalgos_object_detection.anchors import RATIOS, SIZES, boxes_per_cell, cell_anchors, ssd_anchors
from smalgos_object_detection.boxes import decode, encode, iou, nms
from smalgos_object_detection.evaluation import MeanAP, average_precision
from smalgos_object_detection.multibox import match, multibox_loss


def test_iou_of_known_pairs():
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 0.6, 0.6]])
    expected = [[0.0625 / 0.4375, 1.0, 0.0], [0.25, 0.25, 0.0]]
    torch.testing.assert_close(iou(a, b), torch.tensor(expected))


def test_decode_inverts_encode_and_an_anchor_on_its_box_has_zero_offsets():
    torch.manual_seed(0)
    low = torch.rand(50, 2) * 0.5
    boxes = torch.cat([low, low + 0.05 + torch.rand(50, 2) * 0.4], 1)
    anchors = torch.cat([low + 0.02, low + 0.3], 1)
    torch.testing.assert_close(decode(encode(boxes, anchors), anchors), boxes, atol=1e-6, rtol=1e-5)
    assert encode(anchors, anchors).abs().max() < 1e-6
    # MXNet's variances: a box twice its anchor's width is log(2) / 0.2 wide in offsets.
    wide = torch.tensor([[0.0, 0.0, 0.4, 0.2]])
    assert encode(wide, torch.tensor([[0.1, 0.0, 0.3, 0.2]]))[0, 2] == pytest.approx(np.log(2) / 0.2)


def reference_nms(boxes, scores, classes, threshold):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    kept = []
    for i in order:
        if all(classes[j] != classes[i] or float(iou(boxes[i:i + 1], boxes[j:j + 1])) <= threshold for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(4))
def test_nms_keeps_what_the_greedy_rule_keeps(seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(120, 2, generator=g)
    sizes = 0.05 + torch.rand(120, 2, generator=g) * 0.3
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1)
    scores, classes = torch.rand(120, generator=g), torch.randint(0, 3, (120,), generator=g)
    kept = nms(boxes, scores, classes, 0.45)
    assert kept.tolist() == reference_nms(boxes, scores, classes, 0.45)
    assert len(kept) < 120 and (scores[kept][1:] <= scores[kept][:-1]).all()
    top = nms(boxes, scores, classes, 0.45, candidates=30)  # MXNet's nms_topk: only the 30 best take part
    best = torch.argsort(scores, descending=True)[:30]
    assert top.tolist() == best[reference_nms(boxes[best], scores[best], classes[best], 0.45)].tolist()


def test_nms_never_suppresses_across_classes():
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 3)
    kept = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 1, 0]), 0.5)
    assert kept.tolist() == [0, 1]
    assert nms(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0


def test_mxnet_default_boxes_of_vgg16_at_300():
    anchors = ssd_anchors([(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)])
    assert anchors.shape == (8732, 4)
    assert [boxes_per_cell(s, r) for s, r in zip(SIZES, RATIOS)] == [4, 6, 6, 6, 4, 4]
    first = cell_anchors(2, 3, (0.2, 0.3), (1, 2))
    # cell (row 0, col 0) centred at (1/6, 1/4): a 0.2 square, a 0.3 square, then ratio 2 at size 0.2
    torch.testing.assert_close(first[:3], torch.tensor([
        [1 / 6 - 0.1, 0.25 - 0.1, 1 / 6 + 0.1, 0.25 + 0.1], [1 / 6 - 0.15, 0.25 - 0.15, 1 / 6 + 0.15, 0.25 + 0.15],
        [1 / 6 - 0.1 * 2 ** 0.5, 0.25 - 0.1 / 2 ** 0.5, 1 / 6 + 0.1 * 2 ** 0.5, 0.25 + 0.1 / 2 ** 0.5]]))
    assert first.shape == (2 * 3 * 3, 4) and torch.allclose(first[3, :2] - first[0, :2], torch.tensor([1 / 3, 0.0]))


def test_matching_gives_every_object_an_anchor_and_mining_keeps_three_negatives_per_positive():
    anchors = ssd_anchors([(4, 4)], sizes=((0.25,),), ratios=((1,),))  # a 4 x 4 grid of 0.25 squares
    labels = [torch.tensor([[2.0, 0.0, 0.0, 0.25, 0.25], [0.0, 0.5, 0.5, 0.8, 0.8], [-1, -1, -1, -1, -1]]),
              torch.tensor([[-1.0, -1, -1, -1, -1]])]
    t = match(anchors, labels)
    assert t.positive[0].sum() == 2 and t.positive[1].sum() == 0
    assert t.classes[0, 0] == 3 and t.classes[0, 10] == 1  # cell (row 2, col 2) holds the second box best
    torch.testing.assert_close(t.offsets[0, 0], torch.zeros(4))
    logits = torch.zeros((2, 16, 4), requires_grad=True)
    ce, l1 = multibox_loss(logits, torch.zeros((2, 16, 4)), t)
    # 2 positives + 6 hardest negatives of image 0 (image 1 has none), each log(4), over 2 positives
    assert ce.item() == pytest.approx(8 * np.log(4) / 2)
    assert l1.item() == pytest.approx(float(torch.nn.functional.smooth_l1_loss(
        torch.zeros(2, 4), t.offsets[0][t.positive[0]], reduction="sum")) / 2)
    (ce + l1).backward()
    assert logits.grad[1].abs().sum() == 0  # no positive, no negative mined in image 1


def test_map_of_perfect_missing_and_ranked_detections():
    gt = [[0, 0.1, 0.1, 0.4, 0.4], [1, 0.5, 0.5, 0.9, 0.9]]
    m = MeanAP(3)
    m.update([[0, 0.9, 0.1, 0.1, 0.4, 0.4], [1, 0.8, 0.5, 0.5, 0.9, 0.9]], gt)
    assert m.value() == 1.0 and m.per_class()[2] is None
    m = MeanAP(2)
    # class 0: a false positive ranked above the true one (AP 0.5); class 1: missed (AP 0)
    m.update([[0, 0.95, 0.6, 0.6, 0.7, 0.7], [0, 0.9, 0.1, 0.1, 0.4, 0.4]], gt)
    assert m.per_class() == [pytest.approx(0.5), 0.0] and m.value() == pytest.approx(0.25)
    m = MeanAP(1, overlap_threshold=0.5)
    m.update([[0, 0.9, 0.1, 0.1, 0.4, 0.4], [0, 0.8, 0.1, 0.1, 0.4, 0.4]], [[0, 0.1, 0.1, 0.4, 0.4]])
    assert m.per_class() == [pytest.approx(1.0)]  # the duplicate, a false positive after full recall
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
