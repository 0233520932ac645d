/* hull-image: the program behind `hull image` (being written). */
#include <stdio.h>

int main(void)
{
    fputs("hull: image: not built yet\n", stderr);
    return 1;
}
