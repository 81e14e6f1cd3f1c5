using Xunit.Sdk;

namespace Mobility.Protocol.Tests.Hostile;

/// <summary>
/// What "parsed to something valid" means for each parser: every invariant the types promise holds,
/// and writing the result back out and parsing it again gives the same message.
/// </summary>
internal static class Check
{
    private static readonly GnsMessageType[] RequestTypes =
        [GnsMessageType.LookupGuid, GnsMessageType.LookupName, GnsMessageType.Reverse, GnsMessageType.Update, GnsMessageType.Remove, GnsMessageType.Reflect];

    private static readonly GnsMessageType[] ReplyTypes =
        [GnsMessageType.RecordReply, GnsMessageType.GuidListReply, GnsMessageType.UpdateAck, GnsMessageType.RemoveAck, GnsMessageType.ReflectReply, GnsMessageType.Error];

    /// <summary>
    /// Parses <paramref name="input"/>; a <see cref="MalformedMessageException"/> is a pass (false),
    /// any other exception fails the test, and a result must satisfy <paramref name="validate"/> (true).
    /// </summary>
    public static bool MalformedOrValid<T>(string what, byte[] input, Func<byte[], T> parse, Action<T> validate)
    {
        T result;
        try
        {
            result = parse(input);
        }
        catch (MalformedMessageException)
        {
            return false;
        }
        catch (Exception e)
        {
            throw new XunitException($"{what}: {e.GetType().Name} instead of MalformedMessageException for {Convert.ToHexStringLower(input)}", e);
        }

        try
        {
            validate(result);
        }
        catch (Exception e)
        {
            throw new XunitException($"{what}: parsed to something invalid from {Convert.ToHexStringLower(input)}", e);
        }

        return true;
    }

    public static void Request(GnsRequest request)
    {
        Assert.Contains(request.Type, RequestTypes);
        Assert.Equal(request.Type == GnsMessageType.LookupName, request.Name is not null);
        Assert.Equal(request.Type == GnsMessageType.Reverse, request.Address is not null);
        Assert.Equal(request.Type == GnsMessageType.Update, request.Record is not null);
        Assert.Equal(request.Type == GnsMessageType.Remove, request.Removal is not null);
        if (request.Type != GnsMessageType.LookupGuid)
        {
            Assert.True(request.Guid.IsEmpty);
        }

        if (request.Name is not null)
        {
            Assert.Equal(request.Name, HostName.Normalize(request.Name, out _));
        }

        if (request.Address is not null)
        {
            Assert.Contains(request.Address.AddressFamily, new[] { AddressFamily.InterNetwork, AddressFamily.InterNetworkV6 });
        }

        if (request.Record is not null)
        {
            Record(request.Record);
        }

        if (request.Removal is not null)
        {
            Removal(request.Removal);
        }

        var again = GnsDatagram.ParseRequest(Rewrite(request));
        Assert.Equal(Describe(request), Describe(again));
    }

    public static void Response(GnsResponse response)
    {
        Assert.Contains(response.Type, ReplyTypes);
        Assert.Equal(response.Type == GnsMessageType.RecordReply, response.Record is not null);
        Assert.Equal(response.Type is GnsMessageType.UpdateAck or GnsMessageType.ReflectReply, response.Observed is not null);
        Assert.Equal(response.Type == GnsMessageType.Error, response.ErrorMessage is not null);
        Assert.InRange(response.Guids.Length, 0, byte.MaxValue);
        if (response.Record is not null)
        {
            Record(response.Record);
        }

        if (response.Type == GnsMessageType.Error)
        {
            // Invalid UTF-8 is read with replacement characters, so the text is not written back.
            Assert.InRange(response.ErrorMessage!.Length, 0, GnsDatagram.MaxErrorMessageBytes);
            return;
        }

        var buffer = new byte[GnsDatagram.MaxDatagramSize];
        var written = response.Type switch
        {
            GnsMessageType.RecordReply => GnsDatagram.TryWriteRecord(buffer, response.RequestId, response.Record!, out var n) ? n : -1,
            GnsMessageType.GuidListReply => GnsDatagram.WriteGuidList(buffer, response.RequestId, response.Guids, response.Truncated),
            GnsMessageType.UpdateAck => GnsDatagram.WriteUpdateAck(buffer, response.RequestId, response.Version, response.Observed!),
            GnsMessageType.ReflectReply => GnsDatagram.WriteReflectReply(buffer, response.RequestId, response.ReflectFlags, response.Observed!, response.OtherPort),
            _ => GnsDatagram.WriteRemoveAck(buffer, response.RequestId, response.Version),
        };
        var again = GnsDatagram.ParseResponse(buffer.AsSpan(0, written));
        Assert.Equal(Describe(response), Describe(again));
    }

    public static void Record(GnsRecord record)
    {
        Assert.InRange(record.Locators.Length, 0, GnsRecord.MaxLocators);
        Assert.InRange(record.Encoded.Length, 75 + 64, GnsRecord.MaxEncodedSize);
        Assert.Equal(32, record.PublicKey.Length);
        Assert.True(record.IssuedAt >= DateTimeOffset.UnixEpoch);
        if (record.Name is not null)
        {
            Assert.Equal(record.Name, HostName.Normalize(record.Name, out _));
        }

        foreach (var locator in record.Locators)
        {
            Assert.True(Enum.IsDefined(locator.Kind));
            Assert.False(locator.Address.IsIPv4MappedToIPv6);
        }

        var again = GnsRecord.Decode(record.Encoded.Span);
        Assert.Equal(record.Encoded.ToArray(), again.Encoded.ToArray());
        Assert.Equal(record.Locators.ToArray(), again.Locators.ToArray());
    }

    public static void Removal(GnsRemoval removal)
    {
        Assert.Equal(GnsRemoval.EncodedSize, removal.Encoded.Length);
        Assert.True(removal.IssuedAt >= DateTimeOffset.UnixEpoch);
        Assert.Equal(removal.Encoded.ToArray(), GnsRemoval.Decode(removal.Encoded.Span).Encoded.ToArray());
    }

    public static string Describe(GnsRequest r)
        => $"{r.Type}|{r.RequestId}|{r.Guid}|{r.Name}|{(r.Address is null ? "" : Locator.Normalize(r.Address).ToString())}|{Hex(r.Record?.Encoded)}|{Hex(r.Removal?.Encoded)}|{r.ReflectFlags}";

    public static string Describe(GnsResponse r)
        => $"{r.Type}|{r.RequestId}|{Hex(r.Record?.Encoded)}|{string.Join(',', r.Guids)}|{r.Truncated}|{r.Version}|" +
           $"{(r.Observed is null ? "" : new System.Net.IPEndPoint(Locator.Normalize(r.Observed.Address), r.Observed.Port).ToString())}|" +
           $"{r.ErrorCode}|{r.ErrorMessage}|{r.ReflectFlags}|{r.OtherPort}";

    private static byte[] Rewrite(GnsRequest r) => r.Type switch
    {
        GnsMessageType.LookupGuid => GnsDatagram.LookupGuid(r.RequestId, r.Guid, padTo: 0),
        GnsMessageType.LookupName => GnsDatagram.LookupName(r.RequestId, r.Name!, padTo: 0),
        GnsMessageType.Reverse => GnsDatagram.Reverse(r.RequestId, r.Address!, padTo: 0),
        GnsMessageType.Update => GnsDatagram.Update(r.RequestId, r.Record!),
        GnsMessageType.Reflect => GnsDatagram.Reflect(r.RequestId, r.ReflectFlags, padTo: 0),
        _ => GnsDatagram.Remove(r.RequestId, r.Removal!),
    };

    private static string Hex(ReadOnlyMemory<byte>? bytes) => bytes is null ? "" : Convert.ToHexStringLower(bytes.Value.Span);
}
