-- The PostgreSQL migration of the same number widens INTEGER columns to BIGINT and gives keys
-- the C collation. SQLite already stores every INTEGER as 64 bits and compares text bytewise
-- (BINARY), so there is nothing to change here; the file keeps both backends' versions equal.
SELECT 1;
