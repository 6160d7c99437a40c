#include "cli/commands.h"

int main(int argc, char **argv) {
        return tidectl_main(argc, argv, stdout, stderr);
}
