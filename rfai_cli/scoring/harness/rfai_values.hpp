// Encoding of observed values for rfai (the same tags as _pyharness.encode), by exact type.
// A type rfai does not know is reported as such, and the check it belongs to fails.
#pragma once
#include "rfai_out.hpp"
#include <array>
#include <cstdio>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace rfai {

template <class T> struct is_sequence : std::false_type {};
template <class T, class A> struct is_sequence<std::vector<T, A>> : std::true_type {};
template <class T, class A> struct is_sequence<std::deque<T, A>> : std::true_type {};
template <class T, class A> struct is_sequence<std::list<T, A>> : std::true_type {};
template <class T, std::size_t N> struct is_sequence<std::array<T, N>> : std::true_type {};
template <class T> struct is_set : std::false_type {};
template <class... T> struct is_set<std::set<T...>> : std::true_type {};
template <class... T> struct is_set<std::multiset<T...>> : std::true_type {};
template <class... T> struct is_set<std::unordered_set<T...>> : std::true_type {};
template <class T> struct is_map : std::false_type {};
template <class... T> struct is_map<std::map<T...>> : std::true_type {};
template <class... T> struct is_map<std::unordered_map<T...>> : std::true_type {};
template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_tuple : std::false_type {};
template <class... T> struct is_tuple<std::tuple<T...>> : std::true_type {};
template <class A, class B> struct is_tuple<std::pair<A, B>> : std::true_type {};

template <class T> bool encode(std::string& out, const T& value);

template <class C> bool encode_items(std::string& out, const C& items) {
    bool first = true;
    for (const auto& item : items) {
        if (!first) out += ", ";
        first = false;
        // vector<bool> yields proxies: read each through the container's value type.
        if (!encode(out, static_cast<const typename C::value_type&>(item))) return false;
    }
    return true;
}

template <class T> bool encode(std::string& out, const T& value) {
    using U = std::decay_t<T>;
    if constexpr (std::is_same_v<U, bool>) {
        out += value ? "true" : "false";
    } else if constexpr (std::is_same_v<U, char>) {
        out += quote(std::string(1, value));
    } else if constexpr (std::is_integral_v<U>) {
        out += "{\"i\": \"" + std::to_string(value) + "\"}";
    } else if constexpr (std::is_floating_point_v<U>) {
        char text[64];
        std::snprintf(text, sizeof text, "%.17g", static_cast<double>(value));
        out += "{\"f\": \"" + std::string(text) + "\"}";
    } else if constexpr (std::is_convertible_v<const U&, std::string_view>) {
        out += quote(std::string(std::string_view(value)));
    } else if constexpr (is_sequence<U>::value) {
        out += "[";
        if (!encode_items(out, value)) return false;
        out += "]";
    } else if constexpr (is_set<U>::value) {
        out += "{\"s\": [";
        if (!encode_items(out, value)) return false;
        out += "]}";
    } else if constexpr (is_map<U>::value) {
        out += "{\"d\": [";
        bool first = true;
        for (const auto& entry : value) {
            out += first ? "[" : ", [";
            first = false;
            if (!encode(out, entry.first)) return false;
            out += ", ";
            if (!encode(out, entry.second)) return false;
            out += "]";
        }
        out += "]}";
    } else if constexpr (is_optional<U>::value) {
        if (!value) out += "null";
        else return encode(out, *value);
    } else if constexpr (is_tuple<U>::value) {
        out += "{\"t\": [";
        bool ok = true, first = true;
        std::apply([&](const auto&... item) {
            ((ok = ok && ((first ? void() : void(out += ", ")), first = false, encode(out, item))), ...);
        }, value);
        if (!ok) return false;
        out += "]}";
    } else {
        return false;
    }
    return true;
}

template <class T> void observe(Out& out, int c, int k, const T& value) {
    std::string text;
    std::string head = "{\"case\": " + std::to_string(c) + ", \"obs\": " + std::to_string(k);
    if (encode(text, value)) out.line(head + ", \"value\": " + text + "}");
    else out.line(head + ", \"error\": \"a value of a type rfai cannot check outside the program\"}");
}

}  // namespace rfai
