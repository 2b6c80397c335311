"""Who a device belongs to and what they consented to; the CRM's customer records.  Pure."""
