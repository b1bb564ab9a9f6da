/^postmaster@/ admin@example.org
