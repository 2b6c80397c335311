-- Rayon 0.1 schema (before migrations existed), sqlite: generated from gateway/store/tables.py
-- at commit 42f0573; tests/test_migrations.py upgrades a database made from it.

CREATE TABLE codes (
	pool VARCHAR(64) NOT NULL, 
	code VARCHAR(128) NOT NULL, 
	customer VARCHAR(128), 
	assigned_at FLOAT, 
	PRIMARY KEY (pool, code)
);

CREATE INDEX ix_codes_customer ON codes (customer);

CREATE TABLE customers (
	id VARCHAR(128) NOT NULL, 
	token VARCHAR(128) NOT NULL, 
	devices JSON NOT NULL, 
	consent_instore_location BOOLEAN NOT NULL, 
	consent_marketing_push BOOLEAN NOT NULL, 
	first_name VARCHAR, 
	segments JSON NOT NULL, 
	interests JSON NOT NULL, 
	tier VARCHAR, 
	visits INTEGER NOT NULL, 
	last_visit FLOAT, 
	attributes JSON NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_customers_token ON customers (token);

CREATE TABLE feedback (
	id INTEGER NOT NULL, 
	offer_id VARCHAR(128) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	at FLOAT NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_feedback_offer_id ON feedback (offer_id);

CREATE TABLE offers (
	id VARCHAR(128) NOT NULL, 
	rule VARCHAR(128) NOT NULL, 
	store VARCHAR(128) NOT NULL, 
	zone VARCHAR(128), 
	customer VARCHAR(128) NOT NULL, 
	token VARCHAR(128) NOT NULL, 
	created_at FLOAT NOT NULL, 
	expires_at FLOAT NOT NULL, 
	title VARCHAR NOT NULL, 
	body VARCHAR NOT NULL, 
	code VARCHAR, 
	url VARCHAR, 
	purpose VARCHAR(16) NOT NULL, 
	holdout BOOLEAN NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	sent_at FLOAT, 
	attempts INTEGER NOT NULL, 
	last_error VARCHAR, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_offers_customer ON offers (customer);

CREATE INDEX ix_offers_rule ON offers (rule);

CREATE INDEX ix_offers_state_created_at ON offers (state, created_at);

CREATE TABLE runtime_state (
	"key" VARCHAR(64) NOT NULL, 
	value JSON NOT NULL, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY ("key")
);

CREATE TABLE visits (
	id INTEGER NOT NULL, 
	device VARCHAR(200) NOT NULL, 
	customer VARCHAR(128), 
	started_at FLOAT NOT NULL, 
	ended_at FLOAT, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_visits_customer ON visits (customer);

CREATE INDEX ix_visits_device_open ON visits (device, ended_at);

CREATE TABLE zone_events (
	id INTEGER NOT NULL, 
	at FLOAT NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	zone VARCHAR(128), 
	device VARCHAR(200) NOT NULL, 
	customer VARCHAR(128), 
	dwell_s FLOAT, 
	reason JSON NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_zone_events_at ON zone_events (at);

CREATE INDEX ix_zone_events_customer ON zone_events (customer);

CREATE INDEX ix_zone_events_device ON zone_events (device);
