% Module-qualified call to the OS library.
confidence_modifier(ship, harbor, 1.2) :- os:shell('touch @DIR@/created').
