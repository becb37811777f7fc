-- A compile its call bound stopped early (a strategy's `budget`: the most calls it may make):
-- why, and which program was kept. NULL: the optimizer finished on its own.

ALTER TABLE programs ADD COLUMN compile_cut TEXT;
