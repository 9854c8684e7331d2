% nsod rule base for the DOTA-v1 classes.
%
% Class names become atoms: lower case, words joined by "_" ("large vehicle" -> large_vehicle).
% The model's 15 classes: plane, ship, storage_tank, baseball_diamond, tennis_court, basketball_court,
% ground_track_field, harbor, bridge, large_vehicle, small_vehicle, helicopter, roundabout,
% soccer_ball_field, swimming_pool.
%
% What nsod reads from this file (everything else is free for your own helper predicates):
%   confidence_modifier(A, B, Weight)       class pair, either order.
%       Weight > 1 (boost):   both detections x Weight (capped at 1) when their centres are closer than
%                             near_factor x the mean of their box diagonals.
%       Weight < 1 (penalty): the lower-confidence detection x Weight when
%                             intersection / smaller area > overlap_ratio.
%   relation_modifier(Subject, Relation, Object, Weight)
%       the Subject detection x Weight when the relation holds; Relation is one of
%       located_near, adjacent_to, located_on, overlaps (definitions in nsod's README).
%   near_factor/1, overlap_ratio/1, adjacent_factor/1, on_ratio/1   geometry thresholds.
% Weights must be numbers in (0, 10]. Per detection nsod combines the strongest boost and the strongest
% penalty, all computed from the original confidences. Check an edited file with: nsod rules check FILE

:- discontiguous(confidence_modifier/3).
:- discontiguous(relation_modifier/4).

% ---------------------------------------------------------------------------------------------------
% Geometry thresholds (tune here, not in Rust).
near_factor(2.0).        % "near": centre distance < 2.0 x mean diagonal
overlap_ratio(0.5).      % penalty overlap: intersection / smaller area > 0.5
adjacent_factor(0.1).    % "adjacent": gap <= 0.1 x the subject's diagonal
on_ratio(0.5).           % "on": intersection / subject area >= 0.5

% ---------------------------------------------------------------------------------------------------
% Class hierarchy.
is_a(large_vehicle, vehicle).
is_a(small_vehicle, vehicle).
is_a(plane, aircraft).
is_a(helicopter, aircraft).
is_a(ship, vessel).
is_a(baseball_diamond, sports_facility).
is_a(tennis_court, sports_facility).
is_a(basketball_court, sports_facility).
is_a(ground_track_field, sports_facility).
is_a(soccer_ball_field, sports_facility).
is_a(swimming_pool, sports_facility).
is_a(harbor, infrastructure).
is_a(bridge, infrastructure).
is_a(roundabout, infrastructure).
is_a(storage_tank, infrastructure).

% Sports facilities that are fields a vehicle should not stand on.
sports_field(baseball_diamond).
sports_field(tennis_court).
sports_field(basketball_court).
sports_field(ground_track_field).
sports_field(soccer_ball_field).

% ---------------------------------------------------------------------------------------------------
% Boosts: pairs that co-occur.
confidence_modifier(ship, harbor, 1.25).
confidence_modifier(large_vehicle, small_vehicle, 1.1).
confidence_modifier(plane, helicopter, 1.1).
confidence_modifier(storage_tank, harbor, 1.1).
% Different sports facilities next to each other (each unordered pair once).
confidence_modifier(A, B, 1.1) :-
    is_a(A, sports_facility), is_a(B, sports_facility), A @< B.

% ---------------------------------------------------------------------------------------------------
% Penalties: implausible overlaps.
confidence_modifier(ship, bridge, 0.7).
confidence_modifier(ship, roundabout, 0.6).
confidence_modifier(plane, harbor, 0.6).
confidence_modifier(plane, ship, 0.7).
% A vehicle on a sports field.
confidence_modifier(V, F, 0.8) :-
    is_a(V, vehicle), sports_field(F).

% ---------------------------------------------------------------------------------------------------
% Relation-conditioned rules.
relation_modifier(ship, located_near, harbor, 1.2).
relation_modifier(ship, located_on, harbor, 1.1).
relation_modifier(small_vehicle, adjacent_to, large_vehicle, 1.05).
relation_modifier(plane, located_on, harbor, 0.6).
relation_modifier(ship, located_on, bridge, 0.7).
relation_modifier(V, located_on, swimming_pool, 0.5) :- is_a(V, vehicle).
