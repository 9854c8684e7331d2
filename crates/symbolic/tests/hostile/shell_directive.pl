% Runs a shell command while the rule base loads.
:- use_module(library(lists)).
confidence_modifier(ship, harbor, 1.2).
:- initialization(shell('touch @DIR@/created')).
