import { busContractSuite } from './bus-contract-suite.js';
import { KafkaBus } from './kafkajs-bus.js';

busContractSuite('kafkajs', (o) => new KafkaBus(o), { rebalanceMayRedeliver: true });
