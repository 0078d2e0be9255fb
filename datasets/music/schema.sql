-- Music streaming service. Money is REAL in US dollars with 2 decimals.
-- Dates are TEXT 'YYYY-MM-DD'; datetimes are TEXT 'YYYY-MM-DD HH:MM:SS' (UTC). Data as of 2024-06-30.
-- birth_year is NULL when the user did not give it; referred_by_user_id is NULL unless another user invited them.
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    country TEXT NOT NULL,
    signup_date TEXT NOT NULL,
    birth_year INTEGER,
    referred_by_user_id INTEGER REFERENCES users (user_id)
);

CREATE TABLE artists (
    artist_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    genre TEXT NOT NULL,
    formed_year INTEGER NOT NULL
);

-- label is NULL for self-released albums.
CREATE TABLE albums (
    album_id INTEGER PRIMARY KEY,
    artist_id INTEGER NOT NULL REFERENCES artists (artist_id),
    title TEXT NOT NULL,
    release_date TEXT NOT NULL,
    label TEXT
);

-- explicit is 1 for explicit lyrics, 0 otherwise.
CREATE TABLE tracks (
    track_id INTEGER PRIMARY KEY,
    album_id INTEGER NOT NULL REFERENCES albums (album_id),
    title TEXT NOT NULL,
    track_number INTEGER NOT NULL,
    duration_seconds INTEGER NOT NULL,
    explicit INTEGER NOT NULL
);

-- Who performs on a track (links tracks and artists). role is 'primary' or 'featured'.
CREATE TABLE track_artists (
    track_id INTEGER NOT NULL REFERENCES tracks (track_id),
    artist_id INTEGER NOT NULL REFERENCES artists (artist_id),
    role TEXT NOT NULL,
    PRIMARY KEY (track_id, artist_id)
);

-- is_public is 1 for public playlists, 0 for private ones.
CREATE TABLE playlists (
    playlist_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    is_public INTEGER NOT NULL
);

-- Tracks in a playlist (links playlists and tracks); position starts at 1.
CREATE TABLE playlist_tracks (
    playlist_id INTEGER NOT NULL REFERENCES playlists (playlist_id),
    track_id INTEGER NOT NULL REFERENCES tracks (track_id),
    position INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (playlist_id, track_id)
);

-- One row per stream. seconds_played is how long the user listened (a play under 30 seconds is a skip).
-- device is 'mobile', 'desktop', 'web' or 'smart speaker'.
CREATE TABLE plays (
    play_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    track_id INTEGER NOT NULL REFERENCES tracks (track_id),
    played_at TEXT NOT NULL,
    seconds_played INTEGER NOT NULL,
    device TEXT NOT NULL
);

-- plan is 'free', 'student', 'premium' or 'family'; monthly_price in US dollars.
-- end_date is NULL for the subscription that is currently active.
CREATE TABLE subscriptions (
    subscription_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    plan TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,
    monthly_price REAL NOT NULL
);
