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
%   size_range(Class, MinMetres, MaxMetres), size_penalty(Factor)
%       with a ground sample distance (nsod infer/symbolic --gsd METRES), a detection whose long side in
%       metres is outside [MinMetres, MaxMetres] x Factor (default 0.5). Inactive without a GSD.
%   speed_range(Class, MinMps, MaxMps), speed_penalty(Factor)
%       nsod track with a GSD: a track whose ground speed (camera motion removed, measured over 2 s or more) is
%       outside [MinMps, MaxMps] x Factor (default 0.5) from then on. Refused without a GSD when the file is given
%       with --rules; inactive for this default rule base.
%   adjust(Id, Factor, Reason)   scene rules over per-image facts (see rules/README.md and rules/examples/).
%   adjust_track(Id, Factor, Reason)   rules over tracks (nsod track; see rules/README.md).
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
% Size plausibility: the long side of each class's box, in metres, with a margin for loose boxes (a detector's
% box is often 10-20% larger than the object). Active only when nsod knows the ground sample distance.
size_penalty(0.5).
% Light aircraft (Cessna 172: 8.3 m long, 11 m wingspan) to the largest (Airbus A380: 79.8 m wingspan;
% Antonov An-225: 88.4 m wingspan, 84 m long) - manufacturers' type data.
size_range(plane, 7, 95).
% Small boats (~4 m) to the longest ships afloat (container ships of 400 m; Seawise Giant, 458 m).
size_range(ship, 3, 470).
% Tank diameters: small fuel tanks of a few metres to the largest crude-oil floating-roof tanks (~110 m).
size_range(storage_tank, 3, 120).
% Baseball: 27.43 m between bases (90 ft, Official Baseball Rules 2.01); outfield fences 99-122 m from home plate
% (325-400 ft, rule 2.01 note); youth fields about 60 m.
size_range(baseball_diamond, 25, 180).
% Tennis: 23.77 m x 10.97 m (ITF Rules of Tennis, rule 1); with run-off up to 36.6 m x 18.3 m.
size_range(tennis_court, 18, 42).
% Basketball: 28 m x 15 m (FIBA Official Basketball Rules, art. 2); NBA 28.65 m x 15.24 m; half courts ~15 m.
size_range(basketball_court, 12, 36).
% 400 m running track with its field: about 177 m x 93 m (World Athletics Track and Field Facilities Manual);
% 200 m tracks about 90 m.
size_range(ground_track_field, 80, 220).
% Harbours: from a single pier of ~10 m to port basins of a few kilometres.
size_range(harbor, 8, 3000).
% Bridges: footbridges of ~8 m to long spans (DOTA boxes rarely exceed a few kilometres).
size_range(bridge, 8, 5000).
% Buses, coaches and articulated lorries: 7.5 m to 18.75 m (EU Directive 96/53/EC, max. length of an
% articulated vehicle); vans from ~5 m; road trains longer.
size_range(large_vehicle, 4.5, 27).
% Cars: from city cars (Smart Fortwo, 2.7 m) to pick-ups (Ford F-150 crew cab long bed, 6.4 m).
size_range(small_vehicle, 2, 7.5).
% Helicopters, rotor to tail: Robinson R22, 8.8 m; Mil Mi-26, 40 m (manufacturers' data).
size_range(helicopter, 7, 45).
% Mini-roundabouts of 4-28 m inscribed diameter (UK DMRB CD 116) to large gyratories of ~250 m.
size_range(roundabout, 8, 300).
% Football pitches: 90-120 m x 45-90 m (IFAB Laws of the Game, law 1); small-sided and youth pitches from ~40 m.
size_range(soccer_ball_field, 35, 130).
% Swimming pools: garden pools of ~3 m to 50 m Olympic pools (FINA FR 2.1) and larger leisure pools.
size_range(swimming_pool, 2.5, 110).

% ---------------------------------------------------------------------------------------------------
% Speed plausibility of tracks (nsod track with a GSD), ground speed in m/s. nsod measures it on 1 s window means
% over at least 2 s, after camera-motion compensation: a still object's box jitter then reads as well under 1 m/s
% at 0.3 m per pixel (measured on the panning-camera test: 0.2-0.3 m/s at 0.1 m/px), so static classes get 0-2 m/s
% (a walking pace, 1.4 m/s, still inside): anything faster is the detector, not the object.
speed_penalty(0.5).
speed_range(storage_tank, 0, 2).
speed_range(baseball_diamond, 0, 2).
speed_range(tennis_court, 0, 2).
speed_range(basketball_court, 0, 2).
speed_range(ground_track_field, 0, 2).
speed_range(harbor, 0, 2).
speed_range(bridge, 0, 2).
speed_range(roundabout, 0, 2).
speed_range(soccer_ball_field, 0, 2).
speed_range(swimming_pool, 0, 2).
% Cars: the highest general motorway limits are 130 km/h (36 m/s; France, Italy) and unlimited German Autobahn
% stretches, where 250 km/h (69 m/s) is the manufacturers' usual electronic limit: 0-70 m/s.
speed_range(small_vehicle, 0, 70).
% Lorries and coaches: EU speed limiters at 90 km/h for lorries and 100 km/h for coaches (Directive 92/6/EEC as
% amended by 2002/85/EC), 28 m/s; with margin for vans and US trucks (~120 km/h): 0-40 m/s.
speed_range(large_vehicle, 0, 40).
% Ships: container ships cruise at 16-25 kn, the fastest ferries at ~40 kn (20.6 m/s; IMO HSC Code craft); patrol
% and racing boats to ~60 kn: 0-31 m/s.
speed_range(ship, 0, 31).
% Planes: taxiing at 10-15 m/s, rotation at 65-85 m/s (A320: ~145 kt; Airbus Aircraft Characteristics), cruise at
% Mach 0.85 (~250 m/s at altitude): 0-320 m/s.
speed_range(plane, 0, 320).
% Helicopters: never-exceed speeds of 130-190 kt (Robinson R44: 130 kt; AW139: 167 kt; CH-47: 170 kt), to 98 m/s.
speed_range(helicopter, 0, 100).

% ---------------------------------------------------------------------------------------------------
% Relation-conditioned rules.
relation_modifier(ship, located_near, harbor, 1.2).
relation_modifier(ship, located_on, harbor, 1.1).
relation_modifier(small_vehicle, adjacent_to, large_vehicle, 1.05).
relation_modifier(plane, located_on, harbor, 0.6).
relation_modifier(ship, located_on, bridge, 0.7).
relation_modifier(V, located_on, swimming_pool, 0.5) :- is_a(V, vehicle).
