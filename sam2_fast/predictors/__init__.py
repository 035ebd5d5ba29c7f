"""Front doors: the official-API predictors."""
