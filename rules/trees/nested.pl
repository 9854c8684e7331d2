% Candidate: a crown mostly inside a larger, more confident crown is a branch or the sunlit top of the same tree
% (a conifer's crown seen from above often splits into such parts). Mostly inside: located_on (at least half of
% its box within the other), and the other at least twice its area.
adjust(P, 0.5, inside_larger_crown(Q)) :-
    relation(located_on, P, Q),
    detection(P, tree, CP, _, _, PW, PH, _),
    detection(Q, tree, CQ, _, _, QW, QH, _),
    CQ > CP,
    QW * QH >= 2 * PW * PH.
