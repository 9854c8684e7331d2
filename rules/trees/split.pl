% Candidate: two crowns whose centres are closer than a third of the smaller one's long side are one crown found
% twice (NMS kept both because their boxes differ in size): the less confident one is lowered.
adjust(P, 0.6, same_crown_as(Q)) :-
    relation(overlaps, P, Q),
    detection(P, tree, CP, PX, PY, PW, PH, _),
    detection(Q, tree, CQ, QX, QY, QW, QH, _),
    CQ > CP,
    S is min(max(PW, PH), max(QW, QH)),
    (QX - PX) * (QX - PX) + (QY - PY) * (QY - PY) < S * S / 9.
