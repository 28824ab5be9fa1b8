using VideoMatch.Engine.Geometry;

namespace VideoMatch.Engine.Tests.Geometry;

public sealed class TransformEstimatorTests
{
    // Rotation 3°, scale 1.02, translation (12, -7): a similarity, hence also an affine and a homography.
    private static readonly double[] Similarity = Similar(3, 1.02, 12, -7);

    [Theory]
    [InlineData(TransformKind.Homography)]
    [InlineData(TransformKind.Affine)]
    [InlineData(TransformKind.Similarity)]
    public void Estimate_KnownMotionWithOutliers_RecoversItAndFlagsTheOutliers(TransformKind kind)
    {
        var (k0, k1, outlier) = Correspondences(Similarity, count: 300, outlierShare: 0.25, seed: 7);

        var estimate = TransformEstimator.Estimate(kind, k0, k1);

        Assert.True(estimate.Found, estimate.Failure);
        Assert.Equal(kind, estimate.Kind);
        foreach (var (x, y) in new[] { (0.0, 0.0), (640.0, 0.0), (0.0, 480.0), (640.0, 480.0) })
        {
            var (ex, ey) = TransformEstimator.Apply(estimate.Matrix, x, y);
            var (tx, ty) = TransformEstimator.Apply(Similarity, x, y);
            Assert.InRange(Math.Sqrt(((ex - tx) * (ex - tx)) + ((ey - ty) * (ey - ty))), 0, 0.5);
        }

        var flaggedOutliers = outlier.Select((o, i) => o && estimate.InlierMask[i] == 0).Count(b => b);
        Assert.Equal(outlier.Count(o => o), flaggedOutliers);
        Assert.Equal(estimate.InlierMask.Count(m => m == 1), estimate.Inliers);
        Assert.InRange(estimate.Inliers, 220, 225);
    }

    [Fact]
    public void Estimate_TooFewMatches_SaysHowManyAreNeeded()
    {
        var estimate = TransformEstimator.Estimate(TransformKind.Homography, [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]);

        Assert.False(estimate.Found);
        Assert.Empty(estimate.Matrix);
        Assert.Equal(3, estimate.InlierMask.Length);
        Assert.Equal("3 matches; a homography needs at least 4.", estimate.Failure);
    }

    [Fact]
    public void Estimate_SameInputTwice_SameAnswer()
    {
        var (k0, k1, _) = Correspondences(Similarity, count: 200, outlierShare: 0.4, seed: 3);

        var a = TransformEstimator.Estimate(TransformKind.Homography, k0, k1);
        var b = TransformEstimator.Estimate(TransformKind.Homography, k0, k1);

        Assert.Equal(a.Matrix, b.Matrix);
        Assert.Equal(a.InlierMask, b.InlierMask);
    }

    private static double[] Similar(double degrees, double scale, double tx, double ty)
    {
        var a = degrees * Math.PI / 180;
        var c = scale * Math.Cos(a);
        var s = scale * Math.Sin(a);
        return [c, -s, tx, s, c, ty, 0, 0, 1];
    }

    private static (float[] K0, float[] K1, bool[] Outlier) Correspondences(double[] truth, int count, double outlierShare, int seed)
    {
        var random = new Random(seed);
        var k0 = new float[count * 2];
        var k1 = new float[count * 2];
        var outlier = new bool[count];
        for (var i = 0; i < count; i++)
        {
            var x = random.NextDouble() * 640;
            var y = random.NextDouble() * 480;
            var (mx, my) = TransformEstimator.Apply(truth, x, y);
            outlier[i] = i % (int)Math.Round(1 / outlierShare) == 0;
            if (outlier[i])
            {
                // Far off: at least 40 px from where the truth puts it.
                mx += (random.NextDouble() < 0.5 ? -1 : 1) * (40 + (random.NextDouble() * 100));
                my += (random.NextDouble() < 0.5 ? -1 : 1) * (40 + (random.NextDouble() * 100));
            }
            else
            {
                mx += (random.NextDouble() - 0.5) * 0.5;
                my += (random.NextDouble() - 0.5) * 0.5;
            }

            (k0[2 * i], k0[(2 * i) + 1], k1[2 * i], k1[(2 * i) + 1]) = ((float)x, (float)y, (float)mx, (float)my);
        }

        return (k0, k1, outlier);
    }
}
