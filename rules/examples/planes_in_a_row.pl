% Scene rule: planes parked at an apron stand in rows with the same heading; a plane with at least two others
% aligned with it close by is more likely a plane (and a lone "plane" in a field is not boosted).
%
% Close: located_near (centres closer than 2 x the mean diagonal) and, when the ground sample distance is known
% (gsd/1, metres per pixel), within 60 m. Aligned: headings within 0.2 rad (boxes are symmetric: modulo pi).
:- use_module(library(lists)).

aligned(A1, A2) :-
    D0 is abs(A1 - A2),
    D1 is D0 - pi * floor(D0 / pi),
    D is min(D1, pi - D1),
    D < 0.2.

within_60m(PX, PY, QX, QY) :-
    gsd(G),
    !,
    D is sqrt((QX - PX) * (QX - PX) + (QY - PY) * (QY - PY)),
    D * G =< 60.
within_60m(_, _, _, _).

adjust(P, 1.15, in_a_row_with(N, planes)) :-
    detection(P, plane, _, PX, PY, _, _, PA),
    findall(Q,
            ( relation(located_near, P, Q),
              detection(Q, plane, _, QX, QY, _, _, QA),
              aligned(PA, QA),
              within_60m(PX, PY, QX, QY) ),
            Qs),
    length(Qs, N),
    N >= 2.
