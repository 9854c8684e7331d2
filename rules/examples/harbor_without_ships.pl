% Scene rule: a harbour with no ship near it is less likely to be a harbour (empty piers, quays and breakwaters
% are often confused with roads, dams or bridges; DOTA's harbours are labelled where boats moor).
%
% "Near" is nsod's located_near relation: centres closer than near_factor (2) x the mean of both diagonals.

adjust(H, 0.8, no_ship_near) :-
    detection(H, harbor, _, _, _, _, _, _),
    \+ ship_near(H).

ship_near(H) :-
    relation(located_near, H, S),
    detection(S, ship, _, _, _, _, _, _).
