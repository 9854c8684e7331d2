% Candidate: crown size. The long side of a crown's box, metres (needs a GSD). Trees in NEON's crown data reach
% from crowns of about 1 m (young trees) to crowns of 20-30 m for the largest open-grown broadleaf trees
% (Pretzsch et al. 2015, "Crown size and growing space requirement of common tree species in urban centres, parks,
% and forests", Urban Forestry & Urban Greening 14: 466-479: crown radii to about 12 m). Below 1 m a box is a
% shrub, a rock or a shadow; above 35 m it is a stand taken for one crown.
size_penalty(0.5).
size_range(tree, 1, 35).
