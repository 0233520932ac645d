/* docs/openapi.json, built into hulld so /v1/openapi.json always describes
 * the binary that serves it. (The Makefile makes this object depend on the
 * document.) */
__asm__(".section .rodata\n"
        ".global hulld_openapi\n"
        ".type hulld_openapi, @object\n"
        "hulld_openapi:\n"
        ".incbin \"docs/openapi.json\"\n"
        ".byte 0\n"
        ".previous\n");
