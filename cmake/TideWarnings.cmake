# Project-wide compile flags. _GNU_SOURCE is only for the POSIX/Linux calls we use
# (getline, strndup, O_CLOEXEC); the language stays strict C11.
add_compile_definitions(_GNU_SOURCE)
add_compile_options(-Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
                    -Wvla -Wpointer-arith -Wundef -Wno-unused-parameter)
if(TIDE_WERROR)
  add_compile_options(-Werror)
endif()
if(TIDE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
