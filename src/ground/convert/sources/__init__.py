"""Converters, one module per source family; the catalog names each dataset's `module:function`."""
