#!/bin/sh
# First start of the postgres container: Glaneur's own database and user next to Prefect's.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE USER glaneur WITH PASSWORD '${GLANEUR_DB_PASSWORD}';
CREATE DATABASE glaneur OWNER glaneur;
SQL
