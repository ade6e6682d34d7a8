"""HTTP services Glaneur runs beside Prefect: the POWENS callback service (``glaneur serve``)."""
