-- One PostgreSQL for the demo stack: the RMS replica (seeded by the `seed` profile, read-only for
-- the pipeline) and the predictions database (migrated by the `migrate` service).
CREATE DATABASE rms_replica;
CREATE DATABASE rms_ml;
