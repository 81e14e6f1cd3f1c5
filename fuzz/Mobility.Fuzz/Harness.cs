namespace Mobility.Fuzz;

/// <summary>
/// Runs one input through a target and enforces what a parser may do with hostile bytes: return
/// (accepted, or "need more bytes") or throw one of its documented exception types. Any other
/// exception, and an allocation larger than <see cref="MaxAllocatedBytes"/>, becomes a
/// <see cref="FuzzFailureException"/>. A hang is caught by afl-fuzz's per-input timeout (-t) and by
/// the regression tests' own timeout. The tests replay fuzz/corpus and fuzz/regressions through here.
/// </summary>
public static class Harness
{
    /// <summary>Largest input a target is given: the largest message any parser reads (a DNS message) is 65,535 bytes.</summary>
    public const int MaxInputSize = 64 * 1024;

    /// <summary>
    /// Managed bytes one input may allocate. The parsers allocate a few KiB per message; the frame
    /// target's buffers are bounded by its input. 8 MiB is far above that and far below what a length
    /// field trusted from the wire (up to 4 GiB) would ask for.
    /// </summary>
    public const long MaxAllocatedBytes = 8 * 1024 * 1024;

    public static FuzzOutcome Run(FuzzTarget target, ReadOnlySpan<byte> input)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (input.Length > MaxInputSize)
        {
            input = input[..MaxInputSize];
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        FuzzOutcome outcome;
        try
        {
            outcome = target.Body(input);
        }
        catch (FuzzFailureException)
        {
            throw;
        }
        catch (Exception e) when (target.IsRejection(e))
        {
            outcome = FuzzOutcome.Rejected;
        }
        catch (Exception e)
        {
            throw new FuzzFailureException($"{target.Name}: undocumented {e.GetType().FullName}: {e.Message}", e);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        if (allocated > MaxAllocatedBytes)
        {
            throw new FuzzFailureException($"{target.Name}: {allocated} bytes allocated for a {input.Length}-byte input (limit {MaxAllocatedBytes}).");
        }

        return outcome;
    }
}
