/* What `hull --version` prints: ours, the spec's, and the libraries'. */
#include <json-c/json.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>

#include "hull.h"

char *hull_version_text(void)
{
    const struct scmp_version *sv = seccomp_version();
    char *out = NULL;
    if (asprintf(&out,
                 "hull version %s\n"
                 "spec: %s\n"
                 "json-c: %s\n"
                 "libseccomp: %u.%u.%u\n",
                 HULL_VERSION, HULL_OCI_VERSION, json_c_version(), sv ? sv->major : 0,
                 sv ? sv->minor : 0, sv ? sv->micro : 0) < 0)
        return NULL;
    return out;
}
