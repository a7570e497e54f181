"""Database: one async engine factory, the money column type and shared tables."""
