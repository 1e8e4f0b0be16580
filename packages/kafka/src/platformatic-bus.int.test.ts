import { busContractSuite } from './bus-contract-suite.js';
import { PlatformaticKafkaBus } from './platformatic-bus.js';

busContractSuite('platformatic', (o) => new PlatformaticKafkaBus(o), { rebalanceMayRedeliver: true });
