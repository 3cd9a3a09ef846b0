"""Pull-request review: the two sides of a comparison (`revision`), the comparison itself
(`compare`), the report that renders it (`report`) and the gate's command line (`gate`)."""
