"""sweep subpackage."""
