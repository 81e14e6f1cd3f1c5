using BenchmarkDotNet.Attributes;
using Mobility.Protocol.Gns;
using Mobility.Protocol.Identity;
using Mobility.Protocol.Records;

namespace Mobility.Bench.Micro;

/// <summary>Parsing and writing the datagrams of a lookup and an update; the baseline is the server parsing a lookup.</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class DatagramBenchmarks
{
    private byte[] _lookup = null!;
    private byte[] _update = null!;
    private byte[] _reply = null!;
    private GnsRecord _record = null!;
    private readonly byte[] _output = new byte[GnsDatagram.MaxDatagramSize];

    [GlobalSetup]
    public void Setup()
    {
        using var key = Fixtures.Key();
        _record = Fixtures.Record(key);
        _lookup = Fixtures.LookupDatagram(key.Guid);
        _update = GnsDatagram.Update(7, _record);
        GnsDatagram.TryWriteRecord(_output, 42, _record, out var written);
        _reply = _output.AsSpan(0, written).ToArray();
    }

    [Benchmark(Description = "TryReadHeader")]
    public bool ReadHeader() => GnsDatagram.TryReadHeader(_lookup, out _);

    [Benchmark(Baseline = true, Description = "ParseRequest (LookupGuid, padded)")]
    public HostGuid ParseLookup() => GnsDatagram.ParseRequest(_lookup).Guid;

    [Benchmark(Description = "ParseRequest (Update, no verify)")]
    public GnsRecord? ParseUpdate() => GnsDatagram.ParseRequest(_update).Record;

    [Benchmark(Description = "TryWriteRecord (reply)")]
    public int WriteReply()
    {
        GnsDatagram.TryWriteRecord(_output, 42, _record, out var written);
        return written;
    }

    [Benchmark(Description = "ParseResponse (record reply)")]
    public GnsRecord? ParseReply() => GnsDatagram.ParseResponse(_reply).Record;

    [Benchmark(Description = "LookupGuid (client writer)")]
    public byte[] WriteLookup() => GnsDatagram.LookupGuid(42, _record.Guid);
}
