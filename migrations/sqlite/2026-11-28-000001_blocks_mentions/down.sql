DROP TABLE mentions;
DROP TABLE user_blocks;
