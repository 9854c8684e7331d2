% nsod rule base for tree crowns seen from above (models/trees-yolov8n.onnx, one class: tree; 10 cm imagery).
%
% The rules kept from the candidates in rules/trees/, each measured alone on the validation split (the bottom
% quarter of the two Yellowstone images, never trained on) by scripts/trees/evaluate.sh: nsod eval's paired block
% bootstrap (1,000 replicates of 100 px blocks, seed 0), 95% interval of the change in COCO AP50. A candidate is
% kept only when that interval lies above 0; docs/trees.md has the table. On validation:
%   split.pl     AP50 +0.0055 [+0.0012, +0.0101]   kept (below)
%   nested.pl    AP50 +0.0060 [-0.0001, +0.0129]   not kept: the interval reaches 0 (AP +0.0020 [+0.0006, +0.0036])
%   size.pl      no detection outside 1-35 m       not kept: no effect (the model finds no crown under 1 m)
%   isolated.pl  no detection changed              not kept: no effect
%   stand.pl     1,906 raised, AP50 +0.0000         not kept: no effect (a boost to nearly every crown ranks alike)
% The test images (other sites) were run once, with this file, after the choice.
%
% Facts (rules/README.md): detection(Id, Class, Conf, Cx, Cy, W, H, Angle) in pixels, relation(overlaps, A, B).

% Two crowns whose centres are closer than a third of the smaller one's long side are one crown found twice (NMS
% kept both because their boxes differ in size): the less confident one is lowered.
adjust(P, 0.6, same_crown_as(Q)) :-
    relation(overlaps, P, Q),
    detection(P, tree, CP, PX, PY, PW, PH, _),
    detection(Q, tree, CQ, QX, QY, QW, QH, _),
    CQ > CP,
    S is min(max(PW, PH), max(QW, QH)),
    (QX - PX) * (QX - PX) + (QY - PY) * (QY - PY) < S * S / 9.
