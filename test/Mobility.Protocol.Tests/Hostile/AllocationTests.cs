using Xunit.Abstractions;

namespace Mobility.Protocol.Tests.Hostile;

/// <summary>
/// A count or length announced by a peer must be checked before anything is allocated for it: a
/// datagram that announces 255 of something and holds none must cost no more than one that
/// announces 1. Measured with the thread's allocation counter (exact, not sampled).
/// </summary>
public class AllocationTests(ITestOutputHelper output)
{
    /// <summary>
    /// Below what room for 255 locators (16 bytes each, before their address objects) or 255 GUIDs
    /// (20 bytes each) would cost; refusing a datagram costs well under 1 KiB (the exception and its message).
    /// </summary>
    private const long Budget = 4 * 1024;

    /// <summary>Record bytes up to the locator count (from the test vector, with no name).</summary>
    private static byte[] RecordHead(byte count) => [.. RecordBody().AsSpan(0, 73), 0, count];

    [Fact]
    public void Update_announcing_255_locators_but_holding_none_allocates_no_more_than_one_announcing_1()
    {
        byte[] header = Hex("4d47", "01", "04", "00000001");

        var announced255 = Measure([.. header, .. RecordHead(255)], b => GnsDatagram.ParseRequest(b));
        var announced1 = Measure([.. header, .. RecordHead(1)], b => GnsDatagram.ParseRequest(b));

        output.WriteLine($"255 announced: {announced255} B per parse; 1 announced: {announced1} B per parse");
        Assert.InRange(announced255, 0, Budget);
        Assert.InRange(announced255, 0, announced1 + 256);
    }

    [Fact]
    public void Record_announcing_255_locators_but_holding_none_allocates_little()
    {
        var allocated = Measure(RecordHead(255), b => GnsRecord.Decode(b));

        output.WriteLine($"{allocated} B per parse");
        Assert.InRange(allocated, 0, Budget);
    }

    [Fact]
    public void Guid_list_announcing_255_guids_with_a_short_body_allocates_no_more_than_one_announcing_2()
    {
        byte[] header = Hex("4d47", "01", "83", "00000001", "00");

        var announced255 = Measure([.. header, 255, .. new byte[20]], b => GnsDatagram.ParseResponse(b));
        var announced2 = Measure([.. header, 2, .. new byte[20]], b => GnsDatagram.ParseResponse(b));

        output.WriteLine($"255 announced: {announced255} B per parse; 2 announced: {announced2} B per parse");
        Assert.InRange(announced255, 0, Budget);
        Assert.InRange(announced255, 0, announced2 + 256);
    }

    [Fact]
    public void Name_announcing_255_bytes_with_none_present_allocates_little()
    {
        byte[] lookup = Hex("4d47", "01", "02", "00000001", "ff");
        byte[] error = Hex("4d47", "01", "ff", "00000001", "01", "ff");

        var forLookup = Measure(lookup, b => GnsDatagram.ParseRequest(b));
        var forError = Measure(error, b => GnsDatagram.ParseResponse(b));

        output.WriteLine($"lookup: {forLookup} B per parse; error: {forError} B per parse");
        Assert.InRange(forLookup, 0, Budget);
        Assert.InRange(forError, 0, Budget);
    }

    /// <summary>Average bytes allocated on this thread by one parse that must be refused.</summary>
    private static long Measure(byte[] input, Func<byte[], object> parse)
    {
        const int Runs = 200;
        for (var i = 0; i < 20; i++)
        {
            ParseExpectingMalformed(input, parse);
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < Runs; i++)
        {
            ParseExpectingMalformed(input, parse);
        }

        return (GC.GetAllocatedBytesForCurrentThread() - before) / Runs;
    }

    private static void ParseExpectingMalformed(byte[] input, Func<byte[], object> parse)
    {
        try
        {
            parse(input);
        }
        catch (MalformedMessageException)
        {
            return;
        }

        Assert.Fail("The input was expected to be refused.");
    }
}
