-- The program compiled for a compile key, if any.
SELECT program_hash, program FROM programs WHERE compile_key = $compile_key;
