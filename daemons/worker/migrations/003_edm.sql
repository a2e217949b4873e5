-- AI-Pal domain schema 3: epistemic debt (claims the AI made that are not yet
-- verified), the interactions they come from, and the catalogue of
-- known-false claim patterns that edm_detect_misinformation checks against.

CREATE TABLE edm_debts (
    debt_id           text        PRIMARY KEY DEFAULT gen_random_uuid()::text,
    user_id           text        NOT NULL,
    "timestamp"       timestamptz NOT NULL DEFAULT now(),
    claim             text        NOT NULL,
    debt_type         text        NOT NULL,
    severity          text        NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    confidence_score  double precision,
    source_response   text,
    task_context      text,
    interaction_id    text,
    resolved          boolean     NOT NULL DEFAULT false,
    resolution_date   timestamptz,
    resolution_method text
);
CREATE INDEX edm_debts_user_resolved_idx ON edm_debts (user_id, resolved);
CREATE INDEX edm_debts_severity_resolved_idx ON edm_debts (severity, resolved);
CREATE INDEX edm_debts_time_idx ON edm_debts ("timestamp");

CREATE TABLE edm_interactions (
    interaction_id text        PRIMARY KEY,
    user_id        text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    prompt         text,
    response       text        NOT NULL
);
CREATE INDEX edm_interactions_user_idx ON edm_interactions (user_id, created_at DESC);

-- The catalogue: POSIX extended regular expressions, matched case
-- insensitively. Operators add, change or disable rows; the seed below is a
-- starting point.
CREATE TABLE edm_misinfo_patterns (
    pattern_id text        PRIMARY KEY,
    pattern    text        NOT NULL,
    claim      text        NOT NULL,
    evidence   text        NOT NULL,
    category   text        NOT NULL DEFAULT 'general',
    confidence double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    enabled    boolean     NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO edm_misinfo_patterns (pattern_id, pattern, claim, evidence, category, confidence) VALUES
('brain-10-percent',
 '(we|humans|people|you)( only)? use (only )?(10|ten) ?(%|percent) of (our|their|your) brains?',
 'Humans use only 10% of their brains.',
 'Brain imaging shows activity across virtually every region over a day; damage to almost any area causes deficits.',
 'science', 0.95),
('great-wall-from-space',
 'great wall( of china)? (is|can be) (easily |clearly )?(seen|visible) from (space|the moon|orbit)',
 'The Great Wall of China is visible from space.',
 'Astronauts, including China''s Yang Liwei, report it cannot be seen with the naked eye from orbit; it is far too narrow.',
 'geography', 0.9),
('vaccines-autism',
 'vaccines? (cause|causes|causing|leads? to) autism',
 'Vaccines cause autism.',
 'Large cohort studies (e.g. Hviid et al., Annals of Internal Medicine 2019, 657,461 children) found no link; the 1998 paper claiming one was retracted.',
 'health', 0.95),
('goldfish-memory',
 'goldfish (have|has) (a|an) (three|3)[- ]second memory',
 'Goldfish have a three-second memory.',
 'Experiments show goldfish remember feeding cues and trained tasks for months.',
 'science', 0.85),
('lightning-twice',
 'lightning (never|doesn''t|does not|cannot|can''t) strikes? (in )?(the same place )?twice',
 'Lightning never strikes the same place twice.',
 'Tall structures are struck repeatedly; the Empire State Building is hit about 20 to 25 times a year.',
 'science', 0.85),
('sugar-hyperactivity',
 'sugar (causes|makes) (children|kids) (to be )?hyperactive',
 'Sugar makes children hyperactive.',
 'Double-blind trials (Wolraich et al., JAMA 1995) found no effect of sugar on behaviour.',
 'health', 0.8),
('bats-blind',
 'bats are (completely |totally )?blind',
 'Bats are blind.',
 'All bat species can see; many fruit bats rely mainly on vision.',
 'science', 0.8),
('flat-earth',
 '(the )?earth is flat',
 'The Earth is flat.',
 'Satellite imagery, circumnavigation and the curved shadow on the Moon during eclipses show a near-spherical Earth.',
 'science', 0.99),
('shaving-thicker-hair',
 'shaving (makes|causes) (your |the )?hair (to )?grow (back )?(thicker|faster|darker)',
 'Shaving makes hair grow back thicker.',
 'Controlled studies since 1928 show shaving does not change hair thickness, colour or growth rate.',
 'health', 0.85),
('tongue-map',
 'tongue (map|has (separate|different|specific) (zones|areas|regions) for)',
 'The tongue has separate zones for each taste.',
 'Taste receptors for all basic tastes are found across the whole tongue; the "map" came from a mistranslation.',
 'science', 0.75);

-- Matches found by edm_detect_misinformation (keyed by the task id, so a
-- task that runs again does not duplicate its findings).
CREATE TABLE edm_misinfo_findings (
    task_id        uuid        NOT NULL,
    interaction_id text        NOT NULL,
    pattern_id     text        NOT NULL,
    span_start     integer     NOT NULL,
    span_end       integer     NOT NULL,
    matched        text        NOT NULL,
    confidence     double precision NOT NULL,
    user_id        text        NOT NULL,
    found_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, interaction_id, pattern_id, span_start)
);
CREATE INDEX edm_misinfo_findings_user_idx ON edm_misinfo_findings (user_id, found_at DESC);
