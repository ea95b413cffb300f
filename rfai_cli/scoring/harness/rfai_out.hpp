// rfai's results channel (fd 3) for C++ programs under test: one JSON event per line.
// Included before the candidate's code, so its macros cannot rewrite this.
#pragma once
#include <exception>
#include <string>
#include <unistd.h>

namespace rfai {

inline std::string quote(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') { out += '\\'; out += static_cast<char>(c); }
        else if (c < 0x20) { char code[8]; static const char* hex = "0123456789abcdef";
            code[0] = '\\'; code[1] = 'u'; code[2] = '0'; code[3] = '0'; code[4] = hex[c >> 4]; code[5] = hex[c & 15];
            out.append(code, 6); }
        else out += static_cast<char>(c);
    }
    return out + "\"";
}

struct Out {
    void line(const std::string& event) {
        std::string text = event + "\n";
        size_t done = 0;
        while (done < text.size()) {
            ssize_t wrote = ::write(3, text.data() + done, text.size() - done);
            if (wrote <= 0) return;
            done += static_cast<size_t>(wrote);
        }
    }
    void finished(int c) { line("{\"case\": " + std::to_string(c) + ", \"done\": true}"); }
    void failed(int c, const std::string& why) {
        line("{\"case\": " + std::to_string(c) + ", \"error\": " + quote(why.substr(0, 200)) + "}");
    }
};

struct Failure : std::exception {
    const char* what() const noexcept override { return "assertion failed"; }
};

inline void check(bool ok) { if (!ok) throw Failure(); }

}  // namespace rfai
