namespace Mobility.Protocol.Tests.Records;

public class HostNameTests
{
    [Theory]
    [InlineData("a", "a")]
    [InlineData("laptop", "laptop")]
    [InlineData("Alpha-1", "alpha-1")]
    [InlineData("LAPTOP", "laptop")]
    [InlineData("0", "0")]
    [InlineData("123", "123")]
    [InlineData("a--b", "a--b")]
    [InlineData("xn--bcher-kva", "xn--bcher-kva")]
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4", "21fe31dfa154a261626bf854046fd2271b7bed4")]    // 39 hex: not a GUID
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4bb", "21fe31dfa154a261626bf854046fd2271b7bed4bb")] // 41 hex
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4z", "21fe31dfa154a261626bf854046fd2271b7bed4z")]   // 40, not all hex
    public void Valid_name_normalizes_to_lowercase(string name, string canonical)
    {
        Assert.Equal(canonical, HostName.Normalize(name, out var error));
        Assert.Null(error);
        Assert.True(HostName.IsValid(name));
    }

    [Fact]
    public void Name_of_63_characters_is_the_longest_allowed()
    {
        var longest = new string('a', 62) + "Z";

        Assert.Equal(new string('a', 62) + "z", HostName.Normalize(longest, out _));
        Assert.Null(HostName.Normalize(longest + "a", out var error));
        Assert.Contains("63", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("-a")]
    [InlineData("a-")]
    [InlineData("-")]
    [InlineData("a_b")]
    [InlineData("a.b")]
    [InlineData("a b")]
    [InlineData(" a")]
    [InlineData("a\n")]
    [InlineData("a\0")]
    [InlineData("caf\u00e9")]
    [InlineData("\u212a")]      // Kelvin sign: lowercases to 'k' in Unicode, not allowed here
    [InlineData("\u0131")]      // dotless i
    [InlineData("a/b")]
    [InlineData("*")]
    [InlineData("21fe31dfa154a261626bf854046fd2271b7bed4b")]    // a GUID
    [InlineData("21FE31DFA154A261626BF854046FD2271B7BED4B")]    // a GUID in uppercase
    public void Invalid_name_is_refused_with_a_reason(string? name)
    {
        Assert.Null(HostName.Normalize(name, out var error));
        Assert.False(string.IsNullOrWhiteSpace(error));
        Assert.False(HostName.IsValid(name));
    }

    [Fact]
    public void Reason_shows_control_characters_escaped()
    {
        HostName.Normalize("a\u0001b", out var error);

        Assert.Contains("\\u0001", error, StringComparison.Ordinal);
        Assert.DoesNotContain("\u0001", error, StringComparison.Ordinal);
    }
}
