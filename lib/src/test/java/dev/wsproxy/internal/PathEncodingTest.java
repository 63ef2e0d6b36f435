package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PathEncodingTest {

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "chat/room-1|chat/room-1",
            "a%20b|a%20b",
            "what%3F|what%3F",
            "été|%C3%A9t%C3%A9",
            "😀|%F0%9F%98%80",
            "a b|a%20b",
            "100%|100%25",
            "%zz|%25zz",
            "x\"<>|x%22%3C%3E"})
    void encodesWhatMustBeEncodedAndKeepsEscapes(String canonical, String expected) {
        assertThat(PathEncoding.encodeKeepingEscapes(canonical)).isEqualTo(expected);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '#', value = {
            "room=1&user=a%20b#room=1&user=a%20b",
            "next=/a/b?c=d#next=/a/b?c=d",
            "a[]=1&a[]=2#a[]=1&a[]=2",
            "f={a}|b^c`d\\e#f=%7Ba%7D%7Cb%5Ec%60d%5Ce",
            "p=100%&q=%41#p=100%25&q=%41",
            "name=été#name=%C3%A9t%C3%A9",
            "x=\"<>#x=%22%3C%3E"})
    void encodesWhatAQueryMustNotHoldAndKeepsTheRest(String query, String expected) {
        assertThat(PathEncoding.encodeQueryKeepingEscapes(query)).isEqualTo(expected);
    }
}
