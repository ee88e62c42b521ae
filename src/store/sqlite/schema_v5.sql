-- v5: when a role or a permission was last written (Rocket.Chat's
-- `_updatedAt`), for `roles.sync` and `permissions.listAll?updatedSince=`.
-- Milliseconds since the epoch; NULL for rows written before v5.
ALTER TABLE roles ADD COLUMN updated_at INTEGER;
ALTER TABLE permissions ADD COLUMN updated_at INTEGER;
