"""citygrid's domain logic: plain Python over frozen values; never imports faust."""
