using Mobility.Gns.Redis.Watch;
using Mobility.Gns.Watch;
using Mobility.Protocol;
using Mobility.Protocol.Identity;

namespace Mobility.Gns.Redis.Tests.Watch;

/// <summary>Hostile input for the pub/sub payload parser: anything that is not a change is MalformedMessageException, never another error.</summary>
public sealed class ChangeMessageTests : IDisposable
{
    private readonly HostKey _key = HostKey.Generate();

    public void Dispose() => _key.Dispose();

    [Fact]
    public void A_record_change_and_a_removal_round_trip()
    {
        var origin = Guid.NewGuid();
        var record = Record(_key, 9, "round", "2001:db8::1");

        var (o1, c1, _) = ChangeMessage.Decode(ChangeMessage.Encode(origin, new RecordChange(_key.Guid, record, 9)));
        var (o2, c2, _) = ChangeMessage.Decode(ChangeMessage.Encode(origin, new RecordChange(_key.Guid, null, 10)));

        Assert.Equal(origin, o1);
        Assert.Equal(record.Encoded.ToArray(), c1!.Record!.Encoded.ToArray());
        Assert.Equal(origin, o2);
        Assert.True(c2!.Removed);
        Assert.Equal(10UL, c2.Version);
    }

    [Fact]
    public void A_probe_round_trips_without_a_change_and_a_probe_with_bytes_after_it_is_malformed()
    {
        var origin = Guid.NewGuid();
        var probe = ChangeMessage.EncodeProbe(origin, 77);

        var (o, change, number) = ChangeMessage.Decode(probe);

        Assert.Equal(origin, o);
        Assert.Null(change);
        Assert.Equal(77UL, number);
        Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode([.. probe, 0]));
    }

    [Fact]
    public void Every_truncation_of_a_valid_message_is_malformed()
    {
        var bytes = ChangeMessage.Encode(Guid.NewGuid(), new RecordChange(_key.Guid, Record(_key, 1, "x", "192.0.2.1"), 1));
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode(bytes.AsSpan(0, length)));
        }
    }

    [Fact]
    public void Oversized_wrong_format_unknown_kind_and_mismatched_fields_are_malformed()
    {
        var record = Record(_key, 5, null, "192.0.2.1");
        var valid = ChangeMessage.Encode(Guid.NewGuid(), new RecordChange(_key.Guid, record, 5));

        Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode(new byte[ChangeMessage.MaxSize + 1]));
        Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode(Mutate(valid, 0, 2)));
        Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode(Mutate(valid, 1 + 16 + HostGuid.Size + 8, 7)));
        Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode(Mutate(valid, 1 + 16 + HostGuid.Size + 7, 6)));
        Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode(Flip(valid, 1 + 16)));
        Assert.Throws<MalformedMessageException>(() => ChangeMessage.Decode([.. valid, 0]));
    }

    [Fact]
    public void Random_bytes_are_malformed_and_nothing_else()
    {
        var random = new Random(1234);
        for (var i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 700)];
            random.NextBytes(bytes);
            if (bytes.Length > 0)
            {
                bytes[0] = 1;
            }

            try
            {
                ChangeMessage.Decode(bytes);
            }
            catch (MalformedMessageException)
            {
            }
        }
    }

    private static byte[] Flip(byte[] bytes, int index)
    {
        var copy = (byte[])bytes.Clone();
        copy[index] ^= 0x01;
        return copy;
    }

    private static byte[] Mutate(byte[] bytes, int index, byte value)
    {
        var copy = (byte[])bytes.Clone();
        copy[index] = value;
        return copy;
    }
}
