on_ratio(0.5) :- delete_file('@DIR@/canary').
