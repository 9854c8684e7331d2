% Candidate: a small crown (long side under 2 m) with no other crown within 5 m stands in an opening, where a
% shrub, a rock or a stump is likelier than a young tree on its own (needs a GSD).
adjust(P, 0.6, small_and_isolated) :-
    gsd(G),
    detection(P, tree, _, PX, PY, PW, PH, _),
    max(PW, PH) * G < 2,
    R is 5 / G,
    \+ ( detection(Q, tree, _, QX, QY, _, _, _),
         Q \== P,
         (QX - PX) * (QX - PX) + (QY - PY) * (QY - PY) < R * R ).
