"""DuckDB warehouse: schema migrations, views (the documented query surface) and the one writer.
Imports nothing from the layers above."""

from offramp.warehouse.db import Warehouse, WarehouseBusy
from offramp.warehouse.home import configure_environment, state_dir, warehouse_path

__all__ = ["Warehouse", "WarehouseBusy", "configure_environment", "state_dir", "warehouse_path"]
